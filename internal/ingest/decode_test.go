package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newValidator(t testing.TB) *Validator {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var gw01 = Topic{"91320500MA1W2X3Y4Z", "GW01", ""}

func on(leaf string) Topic { t := gw01; t.Leaf = leaf; return t }

func TestDecodeGolden(t *testing.T) {
	v := newValidator(t)
	now := time.Now()

	d, err := v.Decode(on("rt"), golden(t, "rt.json"), now)
	if err != nil {
		t.Fatal(err)
	}
	rt := d.(*Message)
	if rt.Seq != 1042 || rt.Kind != "rt" || rt.Resend || len(rt.Readings) != 5 {
		t.Fatalf("rt: %+v", rt)
	}
	if r := rt.Readings[0]; r.Point != "GT-1201" || *r.Value != 3.5 || r.Unit != "%LEL" || r.Quality != "good" || r.Alarm != nil {
		t.Errorf("reading 0: %+v", r)
	}
	if r := rt.Readings[1]; *r.Alarm != "HH" {
		t.Errorf("reading 1 alarm: %+v", r)
	}
	if r := rt.Readings[2]; *r.Value != 1 || r.Text != nil {
		t.Errorf("a true coil is stored as 1: %+v", r)
	}
	if r := rt.Readings[3]; r.Value != nil || *r.Text != "auto" {
		t.Errorf("a string value goes to value_text: %+v", r)
	}
	if r := rt.Readings[4]; r.Value != nil || r.Text != nil || r.Quality != "comm_fault" {
		t.Errorf("comm_fault reading: %+v", r)
	}
	if want, _ := time.Parse(time.RFC3339, "2026-11-23T16:30:15.101+08:00"); !rt.Created.Equal(want) {
		t.Errorf("created %s, want the earliest reading %s", rt.Created, want)
	}

	d, err = v.Decode(on("event"), golden(t, "event.json"), now)
	if err != nil {
		t.Fatal(err)
	}
	ev := d.(*Message)
	if ev.Seq != 1043 || !ev.Resend || len(ev.Events) != 3 {
		t.Fatalf("event: %+v", ev)
	}
	subjects := []string{ev.Events[0].Subject, ev.Events[1].Subject, ev.Events[2].Subject}
	if !reflect.DeepEqual(subjects, []string{"GT-1201", "ESD-T101-inlet", "buffer"}) {
		t.Errorf("subjects %v", subjects)
	}
	if e := ev.Events[2]; e.State != "buffer_dropped" || !reflect.DeepEqual(e.Ranges, [][2]int64{{10, 19}, {30, 30}}) || *e.Count != 11 {
		t.Errorf("buffer_dropped: %+v", e)
	}

	d, err = v.Decode(on("stat"), golden(t, "stat.json"), now)
	if err != nil {
		t.Fatal(err)
	}
	if st := d.(*Message).Stats; len(st) != 2 || *st[0].Avg != 3.4 || st[1].Avg != nil || st[1].Count != 0 {
		t.Errorf("stats: %+v", st)
	}

	d, err = v.Decode(on("status"), golden(t, "status.json"), now)
	if err != nil {
		t.Fatal(err)
	}
	s := d.(*State)
	if !*s.Online || *s.LastSeq != 2001 || *s.Dropped != 11 || string(s.DroppedRanges) != "[[10,19],[30,30]]" || !strings.Contains(string(s.Heartbeat), `"audit_head":"5f1c"`) {
		t.Errorf("status: %+v", s)
	}
	d, err = v.Decode(on("status"), golden(t, "offline.json"), now)
	if err != nil {
		t.Fatal(err)
	}
	if s := d.(*State); *s.Online || s.Heartbeat != nil {
		t.Errorf("Last Will: %+v", s)
	}
	if _, err := v.Decode(on("meta"), golden(t, "meta.json"), now); err != nil {
		t.Fatal(err)
	}
	// rtd shares the rt envelope.
	if _, err := v.Decode(on("rtd"), golden(t, "rt.json"), now); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRejects(t *testing.T) {
	v := newValidator(t)
	rt := string(golden(t, "rt.json"))
	cases := []struct {
		name, leaf, body, want string
	}{
		{"not JSON", "rt", `{"v":1,`, "not JSON"},
		{"no seq", "rt", strings.Replace(rt, `"seq":1042,`, "", 1), "seq"},
		{"seq 0", "rt", strings.Replace(rt, `"seq":1042`, `"seq":0`, 1), "minimum"},
		{"unknown quality", "rt", strings.Replace(rt, `"quality":"good"`, `"quality":"fine"`, 1), "quality"},
		{"value with comm_fault", "rt", strings.Replace(rt, `"value":null,"unit":"°C"`, `"value":1,"unit":"°C"`, 1), "null"},
		{"extra key", "rt", strings.Replace(rt, `"v":1,`, `"v":1,"x":2,`, 1), "additional"},
		{"an rt on event", "event", rt, "events"},
		{"another gateway's topic", "rt", strings.Replace(rt, `"gateway":"GW01"`, `"gateway":"GW02"`, 1), "topic names"},
		{"an ack is not stored", "ack", `{"seqs":[1]}`, "not a topic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Decode(on(c.leaf), []byte(c.body), time.Now())
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, errInvalid) {
				t.Errorf("not errInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
		})
	}
}

func TestParseTopic(t *testing.T) {
	cases := []struct {
		prefix, topic string
		want          Topic
		ok            bool
	}{
		{"safety", "safety/E1/GW01/rt", Topic{"E1", "GW01", "rt"}, true},
		{"a/b", "a/b/E1/GW01/event", Topic{"E1", "GW01", "event"}, true},
		{"safety", "safety/E1/rt", Topic{}, false},
		{"safety", "safety/E1/GW01/x/rt", Topic{}, false},
		{"safety", "other/E1/GW01/rt", Topic{}, false},
		{"safety", "safety//GW01/rt", Topic{}, false},
	}
	for _, c := range cases {
		got, err := ParseTopic(c.prefix, c.topic)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseTopic(%q, %q) = %+v, %v", c.prefix, c.topic, got, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	v := newValidator(f)
	for _, n := range []string{"rt.json", "event.json", "stat.json", "status.json", "offline.json", "meta.json"} {
		f.Add(strings.TrimSuffix(n, ".json"), golden(f, n))
	}
	f.Add("rt", []byte(`{"v":1,"enterprise":"91320500MA1W2X3Y4Z","gateway":"GW01","seq":1,"resend":false,"sent_at":"2026-11-23T16:30:15.208+08:00","readings":[{"point":"P","ts":"2026-99-99T99:99:99.999+08:00","value":1,"unit":"","quality":"good","alarm":null}]}`))
	f.Fuzz(func(t *testing.T, leaf string, body []byte) {
		switch leaf {
		case "offline":
			leaf = "status"
		case "rt", "rtd", "event", "stat", "status", "meta":
		default:
			leaf = "rt"
		}
		d, err := v.Decode(on(leaf), body, time.Now())
		if err != nil {
			if !errors.Is(err, errInvalid) {
				t.Fatalf("error not errInvalid: %v", err)
			}
			return
		}
		if m, ok := d.(*Message); ok && (m.Seq < 1 || m.Enterprise != gw01.Enterprise) {
			t.Fatalf("accepted a message the schema forbids: %+v", m)
		}
	})
}

func TestAckPayload(t *testing.T) {
	if got := string(AckPayload([]int64{1042, 1043})); got != `{"seqs":[1042,1043]}` {
		t.Fatal(got)
	}
	if got := string(AckPayload(nil)); got != `{"seqs":[]}` {
		t.Fatal(got)
	}
	if err := newValidator(t).Validate("ack", AckPayload([]int64{1, 2})); err != nil {
		t.Fatal(err)
	}
}

func TestSubtract(t *testing.T) {
	cases := []struct {
		name                string
		holes, named        []Range
		missing, namedParts []Range
	}{
		{"no loss events", []Range{{5, 9}}, nil, []Range{{5, 9}}, nil},
		{"fully named", []Range{{5, 9}}, []Range{{5, 9}}, nil, []Range{{5, 9}}},
		{"named wider", []Range{{5, 9}}, []Range{{1, 20}}, nil, []Range{{5, 9}}},
		{"middle named", []Range{{5, 9}}, []Range{{6, 7}}, []Range{{5, 5}, {8, 9}}, []Range{{6, 7}}},
		{"two adjacent events", []Range{{5, 9}}, []Range{{7, 9}, {5, 6}}, nil, []Range{{5, 9}}},
		{"overlapping events", []Range{{5, 9}}, []Range{{5, 7}, {6, 8}}, []Range{{9, 9}}, []Range{{5, 8}}},
		{"elsewhere", []Range{{5, 9}, {20, 20}}, []Range{{11, 19}}, []Range{{5, 9}, {20, 20}}, nil},
		{"one event, two holes", []Range{{5, 9}, {12, 14}}, []Range{{8, 13}}, []Range{{5, 7}, {14, 14}}, []Range{{8, 9}, {12, 13}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, n := subtract(c.holes, c.named)
			if !reflect.DeepEqual(m, c.missing) || !reflect.DeepEqual(n, c.namedParts) {
				t.Fatalf("missing %v named %v; want %v and %v", m, n, c.missing, c.namedParts)
			}
		})
	}
}

// BenchmarkDecode is the worker's CPU per message: schema validation and
// decoding of an rt message of 100 readings.
func BenchmarkDecode(b *testing.B) {
	v := newValidator(b)
	body := rtMessage(gw01.Enterprise, gw01.Gateway, 7, 100, false)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := v.Decode(on("rt"), body, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	v := newValidator(b)
	body := rtMessage(gw01.Enterprise, gw01.Gateway, 7, 100, false)
	for b.Loop() {
		if err := v.Validate("rt", body); err != nil {
			b.Fatal(err)
		}
	}
}
