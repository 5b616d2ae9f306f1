package jsonfmt

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/uplinkschema"
)

var cst = time.FixedZone("UTC+08:00", 8*3600)

func enc() *Encoder {
	return &Encoder{Enterprise: "91320500MA1W2X3Y4Z", Gateway: "GW01", Location: cst}
}

var ts = time.Date(2026, 11, 23, 8, 30, 15, 123456789, time.UTC)

func h(x float64) *float64 { return &x }

// TestEveryKindValidates encodes one message of every kind, with every
// quality and value kind, and checks each against the schema and against
// encoding/json's parser.
func TestEveryKindValidates(t *testing.T) {
	rt := &edge.Message{Seq: 7, Kind: edge.KindRT, Created: ts}
	for q := edge.Good; q.Valid(); q++ {
		r := edge.Reading{Point: "GT-" + q.String(), TS: ts, Unit: "%LEL", Quality: q}
		if q.HasValue() {
			r.Value = edge.Num(12.5)
		}
		rt.Readings = append(rt.Readings, r)
	}
	rt.Readings = append(rt.Readings,
		edge.Reading{Point: "XV-101", TS: ts, Value: edge.BoolValue(true)},
		edge.Reading{Point: "TAG", TS: ts, Value: edge.Str("泵 \"A\"\n<run>"), Alarm: edge.HH},
		edge.Reading{Point: "TINY", TS: ts, Value: edge.Num(1e-9)},
		edge.Reading{Point: "HUGE", TS: ts, Value: edge.Num(-3e300)})
	ev := &edge.Message{Seq: 8, Kind: edge.KindEvent, Created: ts, Events: []edge.Event{
		{Type: edge.EventAlarm, State: edge.StateRaised, Point: "GT-101", TS: ts, Level: "HH", Value: edge.Num(55), Threshold: edge.Num(50), Unit: "%LEL"},
		{Type: edge.EventFault, State: edge.StateRaised, Point: "GT-101", TS: ts, Level: "comm", Message: "comm fault"},
		{Type: edge.EventInterlock, State: edge.StateActionVerified, Interlock: "ESD-101", TS: ts,
			Actions: []edge.Action{{Device: "esd", Table: "coil", Address: 0, Write: edge.Num(0), ReadBack: edge.Num(0)}}},
		{Type: edge.EventInterlock, State: edge.StateTripped, Interlock: "ESD-101", TS: ts,
			Actions: []edge.Action{{Device: "esd", Table: "coil", Address: 0, Write: edge.Num(0)}}},
		{Type: edge.EventSystem, State: edge.StateBufferDropped, Subject: "buffer", TS: ts, Ranges: []edge.SeqRange{{First: 3, Last: 5}}, Count: 3},
	}}
	st := &edge.Message{Seq: 9, Kind: edge.KindStat, Created: ts, Stats: []edge.Stat{
		{Point: "GT-101", Period: edge.Minute, Start: ts, Unit: "%LEL", Avg: 3, Min: 1, Max: 5, Count: 60, Quality: edge.Good},
		{Point: "GT-102", Period: edge.Hour, Start: ts, Unit: "%LEL", Quality: edge.CommFault},
	}}
	e := enc()
	for _, c := range []struct {
		kind string
		body []byte
	}{
		{"rt", e.Message(nil, rt, false, ts)},
		{"event", e.Message(nil, ev, true, ts)},
		{"stat", e.Message(nil, st, false, ts)},
		{"status", e.Offline()},
		{"status", e.Online(ts, Heartbeat{LastSeq: 9, Backlog: 2, OldestUnsent: e.TimePtr(ts), DroppedRanges: [][2]uint64{{3, 5}}, AuditHead: "ab"})},
		{"meta", e.Meta(ts, []MetaPoint{{Point: "GT-101", Name: "gas", Kind: "gas", Unit: "%LEL", Range: &[2]float64{0, 100},
			Thresholds: map[string]*float64{"LL": nil, "L": nil, "H": h(25), "HH": h(50)}}})},
		{"ack", []byte(`{"seqs":[1,2,5]}`)},
	} {
		if err := uplinkschema.Validate(c.kind, c.body); err != nil {
			t.Errorf("%s does not validate: %v\n%s", c.kind, err, c.body)
		}
		var v any
		if err := json.Unmarshal(c.body, &v); err != nil {
			t.Errorf("%s is not JSON for encoding/json: %v\n%s", c.kind, err, c.body)
		}
	}
	b := string(e.Message(nil, rt, false, ts))
	if !strings.Contains(b, `"ts":"2026-11-23T16:30:15.123+08:00"`) {
		t.Errorf("timestamps not RFC 3339 with ms in +08:00: %s", b)
	}
}

// TestSchemaRejectsBadMessages: the schema is not vacuous.
func TestSchemaRejectsBadMessages(t *testing.T) {
	good := string(enc().Message(nil, &edge.Message{Seq: 1, Kind: edge.KindRT, Created: ts,
		Readings: []edge.Reading{{Point: "P", TS: ts, Value: edge.Num(1), Unit: "m"}}}, false, ts))
	if err := uplinkschema.Validate("rt", []byte(good)); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	bad := map[string]string{
		"missing seq":             strings.Replace(good, `"seq":1,`, ``, 1),
		"unknown key":             strings.Replace(good, `"resend":false`, `"resend":false,"extra":1`, 1),
		"quality not in the list": strings.Replace(good, `"quality":"good"`, `"quality":"ok"`, 1),
		"null value with good":    strings.Replace(good, `"value":1`, `"value":null`, 1),
		"value with comm_fault":   strings.Replace(good, `"quality":"good"`, `"quality":"comm_fault"`, 1),
		"timestamp without ms":    strings.Replace(good, `.123+08:00","value"`, `+08:00","value"`, 1),
		"v is 2":                  strings.Replace(good, `"v":1`, `"v":2`, 1),
	}
	for name, b := range bad {
		if b == good {
			t.Fatalf("%s: the test did not change the message", name)
		}
		if err := uplinkschema.Validate("rt", []byte(b)); err == nil {
			t.Errorf("%s: validated: %s", name, b)
		}
	}
	if err := uplinkschema.Validate("event", []byte(`{"v":1,"enterprise":"E","gateway":"G","seq":1,"resend":false,"sent_at":"2026-01-01T00:00:00.000Z","events":[{"id":"x","type":"alarm","state":"tripped","ts":"2026-01-01T00:00:00.000Z","point":"P"}]}`)); err == nil {
		t.Error("an alarm event with an interlock state validated")
	}
}

func TestAppendFloatLikeEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 12.345, 1e-6, 1e-7, 123456789, 1e20, 1e21, 1.5e300, -2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, _ := json.Marshal(f)
		if got := string(appendFloat(nil, f)); got != string(want) {
			t.Errorf("%g: got %s, encoding/json %s", f, got, want)
		}
	}
	if string(appendFloat(nil, math.NaN())) != "null" {
		t.Error("NaN is not null")
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("GT-1201 \"泵\"\n\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		var out string
		if err := json.Unmarshal(appendString(nil, s), &out); err != nil {
			t.Fatalf("%q encodes to invalid JSON: %v", s, err)
		}
		// Invalid UTF-8 becomes U+FFFD byte by byte, as encoding/json does.
		ref, _ := json.Marshal(s)
		var want string
		json.Unmarshal(ref, &want)
		if want != out {
			t.Fatalf("%q round-trips to %q, encoding/json to %q", s, out, want)
		}
	})
}
