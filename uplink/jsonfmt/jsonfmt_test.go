package jsonfmt

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
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
		{"status", e.Online(ts, Heartbeat{LastSeq: 9, Backlog: 2, OldestUnsent: e.TimePtr(ts), DroppedRanges: [][2]uint64{{3, 5}}, AuditHead: "ab",
			ConfigSHA256: "3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855e"})},
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

// refFloat is appendFloat's reference: encoding/json's rule, through strconv.
func refFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	b, _ := json.Marshal(f)
	return string(b)
}

func TestAppendFloatFastPath(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 0.5, -0.5, 12.5, 123.45, 0.1 + 0.2, 1.000001, 999999.999999,
		1e-6, 1.5e-6, 4.2e14, 9.99e14, 1e15, 1e15 + 0.5, 2e15 + 1, 1 << 53, -(1 << 53) - 2, 65535, -32768, 4294967295,
		20.123456, 20.1234567, 1.0 / 3, 2.0 / 3, 100.0 / 7, 0.000123, 7e-7, 99.99, -273.15, 101.325}
	for i := 0; i < 100000; i++ {
		// values as conversion makes them: counts times a scale, rounded
		n := float64(int64(i*7919) % 200003)
		vals = append(vals, n, n/10, n/100, n/1000, n*0.0625, (n-100000)/3, n*1e-5, n*1.7e9)
	}
	// random decimals of up to 17 digits and 0-8 places, parsed as a
	// device's value would be
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		digits := strconv.FormatUint(rnd.Uint64N(uint64(math.Pow10(1+rnd.IntN(17)))), 10)
		places := rnd.IntN(9)
		for len(digits) <= places {
			digits = "0" + digits
		}
		s := digits[:len(digits)-places] + "." + digits[len(digits)-places:] + "0"
		if rnd.IntN(2) == 0 {
			s = "-" + s
		}
		f, _ := strconv.ParseFloat(s, 64)
		vals = append(vals, f)
	}
	for _, f := range vals {
		if got, want := string(appendFloat(nil, f)), refFloat(f); got != want {
			t.Fatalf("%v: got %s, encoding/json %s", f, got, want)
		}
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, 12.5, -0.001, 1e15, 0.1 + 0.2, 123456.789012} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if got, want := string(appendFloat(nil, v)), refFloat(v); got != want {
			t.Fatalf("%v: got %s, encoding/json %s", v, got, want)
		}
	})
}

// benchMessage is one rt message as the reference load makes it: 250
// readings of one poll, values either register counts or scaled values.
func benchMessage(scaled bool) *edge.Message {
	m := &edge.Message{Seq: 1, Kind: edge.KindRT, Created: ts}
	for i := 0; i < 250; i++ {
		v := float64(i * 97 % 65536)
		unit := ""
		if scaled {
			v, unit = v/100, "%LEL" // a decimal, as conversion rounds it
		}
		m.Readings = append(m.Readings, edge.Reading{Point: fmt.Sprintf("U1-R%03d", i), TS: ts, Value: edge.Num(v), Unit: unit, Quality: edge.Good})
	}
	return m
}

func BenchmarkMessage(b *testing.B) {
	for _, c := range []struct {
		name   string
		scaled bool
	}{{"counts", false}, {"scaled", true}} {
		b.Run(c.name, func(b *testing.B) {
			m, e := benchMessage(c.scaled), enc()
			var buf []byte
			for b.Loop() {
				buf = e.Message(buf[:0], m, false, ts)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(m.Readings)), "ns/reading")
			b.SetBytes(int64(len(buf)))
		})
	}
}

// TestReadingBoundHolds checks edge.MaxReadingBytes, which splits a tick
// into messages, against this encoder: never below the real size, and
// close to it for ordinary readings, so that messages are filled.
func TestReadingBoundHolds(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "GT-101", "%LEL", "℃", "m³/h", "泵 \"A\"\n<run>&\t\\", "\x00\x1f\xff\xfe", "\u2028\u2029", strings.Repeat("<", 40)}
	vals := []edge.Value{edge.Num(0), edge.Num(-0.0000012345678901234567), edge.Num(-1.2345678901234567e-308), edge.Num(-123456789012345678900),
		edge.Num(math.MaxFloat64), edge.Num(12.5), edge.BoolValue(false), edge.Str("")}
	for _, s := range strs {
		vals = append(vals, edge.Str(s))
	}
	for _, loc := range []*time.Location{time.UTC, cst, time.FixedZone("", -(9*3600 + 30*60))} {
		e := enc()
		e.Location = loc
		for i := 0; i < 100000; i++ {
			v := vals[rnd.IntN(len(vals))]
			switch rnd.IntN(4) {
			case 0: // any float64
				v = edge.Num(math.Float64frombits(rnd.Uint64()))
			case 1: // an integer of 1 to 18 digits
				v = edge.Num(float64(rnd.Int64N(int64(math.Pow10(1+rnd.IntN(18))))) * float64(1-2*rnd.IntN(2)))
			case 2: // a decimal around 10^-8 to 10^18
				v = edge.Num(rnd.NormFloat64() * math.Pow10(rnd.IntN(26)-8))
			}
			r := edge.Reading{Point: strs[rnd.IntN(len(strs))] + strconv.Itoa(i), TS: ts.Add(time.Duration(rnd.Int64N(1e15))),
				Value: v, Unit: strs[rnd.IntN(len(strs))], Quality: edge.Quality(rnd.IntN(8)), Alarm: edge.Level(rnd.IntN(5))}
			if rnd.IntN(3) == 0 {
				r.Fault = strs[rnd.IntN(len(strs))]
			}
			got := len(e.reading([]byte{','}, &r))
			if bound := edge.MaxReadingBytes(&r); got > bound {
				t.Fatalf("%+v encodes to %d bytes, bound %d", r, got, bound)
			}
		}
	}
	// The reference load's reading: the bound is within 25 % of the real size.
	r := edge.Reading{Point: "U1-R001", TS: ts, Value: edge.Num(1234), Quality: edge.Good}
	got, bound := len(enc().reading([]byte{','}, &r)), edge.MaxReadingBytes(&r)
	if bound > got*5/4 {
		t.Errorf("bound %d for a reading of %d bytes: messages would be split early", bound, got)
	}
	// A tick of 1,000 such readings fills two messages of at most 65,536 bytes.
	rs := make([]edge.Reading, 1000)
	for i := range rs {
		rs[i] = edge.Reading{Point: fmt.Sprintf("U%d-R%03d", i/250+1, i%250), TS: ts, Value: edge.Num(65535), Quality: edge.Good, Alarm: edge.HH}
	}
	ms := edge.SplitReadings(rs, ts, 65536)
	if len(ms) != 2 {
		t.Errorf("1,000 readings in %d messages, want 2", len(ms))
	}
	for _, m := range ms {
		m.Seq = math.MaxUint64
		if n := len(enc().Message(nil, m, false, ts)); n > 65536 {
			t.Errorf("a message of %d bytes", n)
		}
	}
}
