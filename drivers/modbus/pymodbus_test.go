package modbus

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

type manifestEntry struct {
	Unit    byte   `json:"unit"`
	Table   string `json:"table"`
	Address uint16 `json:"address"`
	Type    string `json:"type"`
	Order   string `json:"order"`
	Bit     int    `json:"bit"`
	Length  int    `json:"length"`
	Value   any    `json:"value"`
}

// startPySlave runs testdata/pyslave.py and returns the manifest of what it
// holds, written by the script from Python's struct encodings.
func startPySlave(t *testing.T, args ...string) (*testpeer.Proc, []manifestEntry) {
	t.Helper()
	testpeer.NeedPymodbus(t)
	man := filepath.Join(t.TempDir(), "manifest.json")
	p := testpeer.Start(t, testpeer.Python, append([]string{"testdata/pyslave.py", "--manifest", man}, args...)...)
	p.WaitOutput(t, "pyslave: serving", 15*time.Second)
	for i, a := range args {
		if a == "--tcp" && i+1 < len(args) {
			// pymodbus says "serving" before its port accepts connections.
			testpeer.WaitPort(t, "127.0.0.1:"+args[i+1], 15*time.Second)
		}
	}
	b, err := os.ReadFile(man)
	if err != nil {
		t.Fatal(err)
	}
	var m []manifestEntry
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return p, m
}

func specOf(t *testing.T, e manifestEntry) Spec {
	tab, err := ParseTable(e.Table)
	if err != nil {
		t.Fatal(err)
	}
	typ, _ := ParseType(e.Type)
	ord, _ := ParseOrder(e.Order)
	return Spec{Table: tab, Address: e.Address, Type: typ, Order: ord, Bit: e.Bit, Length: e.Length}
}

func wantValue(e manifestEntry) edge.Value {
	switch v := e.Value.(type) {
	case bool:
		return edge.BoolValue(v)
	case string:
		return edge.Str(v)
	case float64:
		return edge.Num(v)
	}
	return edge.Value{}
}

// checkAll reads every manifest entry of each unit through one Source per
// unit and compares with the slave's own values.
func checkAll(t *testing.T, line *Line, m []manifestEntry, units ...byte) {
	t.Helper()
	for _, u := range units {
		var specs []Spec
		var want []manifestEntry
		for _, e := range m {
			if e.Unit == u {
				specs = append(specs, specOf(t, e))
				want = append(want, e)
			}
		}
		dev := NewDevice(line, DeviceOpts{Name: fmt.Sprintf("u%d", u), Unit: u, Timeout: 2 * time.Second, Retries: 1, Limits: Limits{MaxGap: 10}})
		src := dev.Source(specs)
		out := make([]edge.Raw, len(specs))
		for pass := range 2 { // the second pass runs on the split plan
			src.Read(context.Background(), out)
			for i, r := range out {
				e := want[i]
				if r.Quality != edge.Good || r.Err != nil {
					t.Fatalf("unit %d %s %d %s/%s: quality %s: %v", u, e.Table, e.Address, e.Type, e.Order, r.Quality, r.Err)
				}
				w := wantValue(e)
				if e.Type == "float32" && w.Kind == edge.Number && r.Value.Kind == edge.Number {
					// compare as the float32 the slave holds
					if float32(r.Value.Num) != float32(w.Num) {
						t.Errorf("pass %d unit %d %s %d float32 %s: got %v, slave holds %v", pass, u, e.Table, e.Address, e.Order, r.Value, w)
					}
					continue
				}
				if r.Value != w {
					t.Errorf("pass %d unit %d %s %d %s %s bit %d: got %v, slave holds %v", pass, u, e.Table, e.Address, e.Type, e.Order, e.Bit, r.Value, w)
				}
			}
		}
		types := map[string]map[string]bool{}
		for _, e := range want {
			if types[e.Type] == nil {
				types[e.Type] = map[string]bool{}
			}
			types[e.Type][e.Order] = true
		}
		for _, ty := range []string{"int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64", "bcd32"} {
			if len(types[ty]) != 4 {
				t.Errorf("unit %d: %s covered in %d word orders, want 4", u, ty, len(types[ty]))
			}
		}
		t.Logf("unit %d: %d points of %d types decoded in %d requests per poll (plan: %d blocks)", u, len(specs), len(types), len(src.Plan().Blocks), len(src.Plan().Blocks))
	}
}

func TestPymodbusTCPAllTypes(t *testing.T) {
	port := testpeer.FreePort(t)
	_, m := startPySlave(t, "--tcp", strconv.Itoa(port), "--units", "1,2")
	line, err := NewLine(LineOpts{Name: "plc", Address: fmt.Sprintf("127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer line.Close()
	checkAll(t, line, m, 1, 2)
}

func TestPymodbusRTUTwoUnitsOneLine(t *testing.T) {
	a, b := testpeer.PtyPair(t)
	_, m := startPySlave(t, "--rtu", a, "--units", "1,2", "--baud", "19200")
	line, err := NewLine(LineOpts{Name: "rs485-1", Device: b, Baud: 19200})
	if err != nil {
		t.Fatal(err)
	}
	defer line.Close()
	checkAll(t, line, m, 1, 2)
}
