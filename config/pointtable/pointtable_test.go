package pointtable

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/hazwatch/edgecollector/config"
)

var update = flag.Bool("update", false, "rewrite the expected .err golden files")

const template = "../../docs/points-template.csv"

// mergeConfig writes base.yaml with the imported points into dir and
// returns its path.
func mergeConfig(t *testing.T, dir string, points []byte) string {
	t.Helper()
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	merged := strings.Replace(string(base), "points: []\n", string(points), 1)
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(merged), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readCSV(t *testing.T, path string) *Table {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := ReadCSV(b)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func trimmed(rows [][]string) [][]string {
	var out [][]string
	for _, r := range rows {
		out = append(out, trimRow(slices.Clone(r)))
	}
	return out
}

func sameCells(t *testing.T, what string, got, want [][]string) {
	t.Helper()
	g, w := trimmed(got), trimmed(want)
	if len(g) != len(w) {
		t.Fatalf("%s: %d rows, want %d", what, len(g), len(w))
	}
	for i := range w {
		if !slices.Equal(g[i], w[i]) {
			t.Errorf("%s: row %d differs\n got  %q\n want %q", what, i+1, g[i], w[i])
		}
	}
}

// TestRoundTrip: the template, as an .xlsx and as a .csv, imports,
// validates inside a real config, and exports to identical cells, in both
// file formats.
func TestRoundTrip(t *testing.T) {
	orig := readCSV(t, template)
	dir := t.TempDir()
	xlsx := filepath.Join(dir, "in.xlsx")
	in := &Table{Sheet: "points", Rows: orig.Rows}
	for _, h := range orig.Rows[0] {
		k, ok := column(h)
		if !ok {
			t.Fatalf("template header %q is not a column", h)
		}
		in.Numeric = append(in.Numeric, Columns[k].kind == kNum || Columns[k].kind == kInt)
	}
	if err := WriteXLSX(xlsx, in); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{template, xlsx} {
		t.Run(filepath.Ext(src), func(t *testing.T) {
			tb, err := ReadFile(src, "")
			if err != nil {
				t.Fatal(err)
			}
			sameCells(t, "read back", tb.Rows, orig.Rows)
			im, probs := Import(tb, src)
			if len(probs) > 0 {
				t.Fatalf("import: %v", probs)
			}
			if ps := Check(im, tb, src, "testdata/base.yaml"); len(ps) > 0 {
				t.Fatalf("check: %v", ps)
			}
			y, err := im.YAML("test")
			if err != nil {
				t.Fatal(err)
			}
			cfgPath := mergeConfig(t, t.TempDir(), y)
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatalf("merged config does not validate: %v", err)
			}
			if len(cfg.Points) != len(orig.Rows)-1 {
				t.Fatalf("%d points, want %d", len(cfg.Points), len(orig.Rows)-1)
			}
			// Spot checks of what the config now holds, from the template's cells.
			gt := cfg.Point("GT-1201")
			if !gt.Loop || gt.RawRange[1] != 65535 || *gt.Alarms.HH != 50 || gt.Alarms.OnDelay.D().String() != "2s" || *gt.Source.Address != 0 {
				t.Errorf("GT-1201 imported as %+v", gt)
			}
			if zs := cfg.Point("ZS-1101"); *zs.Source.Bit != 3 || zs.Source.Table != "holding" || !*zs.Alarms.AlarmWhen || zs.Alarms.Level != "H" {
				t.Errorf("ZS-1101 imported as %+v %+v", zs.Source, zs.Alarms)
			}
			if ms := cfg.Point("MS-1202"); ms.Source.Bits != "0-3" {
				t.Errorf("MS-1202 imported as %+v", ms.Source)
			}
			exp, lost, err := Export(cfgPath)
			if err != nil || len(lost) > 0 {
				t.Fatalf("export: %v %v", err, lost)
			}
			sameCells(t, "export", exp.Rows, orig.Rows)
			// Through the files: .xlsx and .csv.
			outX := filepath.Join(t.TempDir(), "out.xlsx")
			if err := WriteXLSX(outX, exp); err != nil {
				t.Fatal(err)
			}
			back, err := ReadFile(outX, "")
			if err != nil {
				t.Fatal(err)
			}
			sameCells(t, "exported xlsx", back.Rows, orig.Rows)
			var csvb bytes.Buffer
			if err := WriteCSV(&csvb, exp); err != nil {
				t.Fatal(err)
			}
			cb, _ := ReadCSV(csvb.Bytes())
			sameCells(t, "exported csv", cb.Rows, orig.Rows)
		})
	}
}

func rowOf(t *Table, code string) []string {
	for _, r := range t.Rows {
		if len(r) > 0 && r[0] == code {
			return r
		}
	}
	return nil
}

// TestSensorPresets: the platform sensor table in both layouts, cell by
// cell from the template's values.
func TestSensorPresets(t *testing.T) {
	tb := readCSV(t, template)
	im, probs := Import(tb, template)
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	y, _ := im.YAML("")
	cfg, err := config.Load(mergeConfig(t, t.TempDir(), y))
	if err != nil {
		t.Fatal(err)
	}
	js, err := Sensors(cfg, "jiangsu")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"TARGET_CODE", "TARGET_NAME", "GATEWAY_CODE", "BIT_NO", "UNIT", "LOW_VALUE", "TOP_VALUE", "LOW_VALUE_01", "LOW_VALUE_02", "TOP_VALUE_01", "TOP_VALUE_02"},
		{"GT-1201", "1#罐区防火堤可燃气体", "GW01", "GT-1201", "%LEL", "0", "100", "", "", "25", "50"},
	}
	sameCells(t, "jiangsu", js.Rows[:2], want)
	if r := rowOf(js, "AT-1401"); !slices.Equal(r, []string{"AT-1401", "泵房氧气", "GW01", "AT-1401", "%VOL", "0", "25", "18", "19.5", "23.5"}) {
		t.Errorf("jiangsu oxygen row %q", r)
	}
	gen, _ := Sensors(cfg, "generic")
	if r := rowOf(gen, "LT-1101"); !slices.Equal(r, []string{"LT-1101", "1#储罐液位", "m", "0", "20", "0.5", "1", "17", "18.5"}) {
		t.Errorf("generic level row %q", r)
	}
	if _, err := Sensors(cfg, "hebei"); err == nil {
		t.Error("unknown preset accepted")
	}
	// The xlsx carries both sheets.
	out := filepath.Join(t.TempDir(), "both.xlsx")
	pts, _, _ := Export(mergeConfig(t, t.TempDir(), y))
	if err := WriteXLSX(out, pts, js); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.GetSheetList(); !slices.Equal(got, []string{"points", "sensors"}) {
		t.Fatalf("sheets %v", got)
	}
	if v, _ := f.GetCellValue("sensors", "J2"); v != "25" {
		t.Errorf("sensors!J2 (GT-1201 TOP_VALUE_01) = %q", v)
	}
}

// TestImportErrors: every bad cell is named by sheet (for xlsx), row,
// column letter and header; with -c, config problems of a point land on its
// row and the column that holds the key.
func TestImportErrors(t *testing.T) {
	for _, c := range []struct{ name, check string }{{"bad", ""}, {"badcheck", "testdata/base.yaml"}} {
		t.Run(c.name, func(t *testing.T) {
			src := "testdata/" + c.name + ".csv"
			tb := readCSV(t, src)
			run := func(tb *Table, src string) string {
				im, probs := Import(tb, src)
				if len(probs) == 0 && c.check != "" {
					probs = Check(im, tb, src, c.check)
				}
				if len(probs) == 0 {
					t.Fatal("no problems found")
				}
				return probs.Error() + "\n"
			}
			got := run(tb, src)
			// The same table as an xlsx sheet names the sheet too.
			x := filepath.Join(t.TempDir(), c.name+".xlsx")
			if err := WriteXLSX(x, &Table{Sheet: "点表", Rows: tb.Rows}); err != nil {
				t.Fatal(err)
			}
			xt, err := ReadFile(x, "")
			if err != nil {
				t.Fatal(err)
			}
			got += strings.ReplaceAll(run(xt, c.name+".xlsx"), x, c.name+".xlsx")
			golden := "testdata/" + c.name + ".err"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run ImportErrors -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func TestCanon(t *testing.T) {
	for _, c := range []struct {
		k      kind
		in     string
		want   string
		wantOK bool
	}{
		{kDur, "60s", "1m", true}, {kDur, "1500ms", "1500ms", true}, {kDur, "5", "5s", true}, {kDur, "2h0m0s", "2h", true}, {kDur, "-1s", "", false},
		{kNum, "0.10", "0.1", true}, {kNum, "4000.0", "4000", true}, {kNum, "1e3", "1000", true}, {kNum, "NaN", "", false}, {kNum, "abc", "", false},
		{kInt, "12", "12", true}, {kInt, "12.0", "12", true}, {kInt, "12.5", "", false},
		{kBool, "是", "true", true}, {kBool, "NO", "false", true}, {kBool, "maybe", "", false},
	} {
		got, err := canon(c.k, c.in)
		if (err == nil) != c.wantOK || got != c.want {
			t.Errorf("canon(%d, %q) = %q, %v", c.k, c.in, got, err)
		}
	}
}

// TestGB18030CSV: a CSV saved by Excel on Chinese Windows (GB18030) reads
// the same as its UTF-8 original.
func TestGB18030CSV(t *testing.T) {
	u := []byte("code,name,kind,device\nGT-1,罐区可燃气体,gas,adam-1\n")
	gb := []byte("code,name,kind,device\nGT-1,\xb9\xde\xc7\xf8\xbf\xc9\xc8\xbc\xc6\xf8\xcc\xe5,gas,adam-1\n")
	a, _ := ReadCSV(u)
	b, err := ReadCSV(gb)
	if err != nil {
		t.Fatal(err)
	}
	sameCells(t, "gb18030", b.Rows, a.Rows)
}

// FuzzImport: no table, however hostile, panics the importer.
func FuzzImport(f *testing.F) {
	b, _ := os.ReadFile(template)
	f.Add(b)
	bad, _ := os.ReadFile("testdata/bad.csv")
	f.Add(bad)
	f.Add([]byte("code\n\"unterminated"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := ReadCSV(data)
		if err != nil {
			return
		}
		im, _ := Import(tb, "fuzz.csv")
		im.YAML("")
	})
}

// TestExportNamesLostKeys: a point key with no column is reported, so an
// engineer knows the table does not carry it.
func TestExportNamesLostKeys(t *testing.T) {
	im, probs := Import(readCSV(t, template), template)
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	y, _ := im.YAML("")
	y = bytes.Replace(y, []byte("{code: XV-1101,"), []byte("{code: XV-1101, maintenance: true,"), 1)
	p := mergeConfig(t, t.TempDir(), y)
	if _, err := config.Load(p); err != nil {
		t.Fatal(err)
	}
	_, lost, err := Export(p)
	if err != nil || !slices.Equal(lost, []string{"XV-1101: maintenance"}) {
		t.Fatalf("lost %q, err %v", lost, err)
	}
}
