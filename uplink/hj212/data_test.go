package hj212

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

var cst = time.FixedZone("UTC+08:00", 8*3600)

func at(h, m, s, ms int) time.Time {
	return time.Date(2024, 5, 1, h, m, s, ms*1e6, cst)
}

var testFactors = map[string]string{
	"GT-101": "a21026", "GT-102": "a21005", "GT-103": "a99001", "LV-1": "a99002", "TT-1": "a99003", "SW-1": "a99004",
}

func testEncoder(v Version) *Encoder {
	return &Encoder{Version: v, ST: "32", PW: "123456", MN: "MN0001", Ack: true, Factors: testFactors, Location: cst}
}

// rtMessage is the message of the rt_* golden files: the real-time
// snapshot (rtd) of the 08:30:00 boundary.
func rtMessage() *edge.Message {
	return &edge.Message{Seq: 1042, Kind: edge.KindRTD, Created: at(8, 30, 0, 0), Readings: []edge.Reading{
		{Point: "GT-101", TS: at(8, 30, 0, 120), Value: edge.Num(12.5), Quality: edge.Good},
		{Point: "GT-102", TS: at(8, 30, 0, 130), Quality: edge.CommFault},
		{Point: "PT-1", TS: at(8, 30, 0, 100), Value: edge.Num(1.5), Quality: edge.Good},
		{Point: "GT-103", TS: at(8, 30, 0, 140), Value: edge.Num(105), Quality: edge.OverRange},
		{Point: "LV-1", TS: at(8, 30, 0, 150), Value: edge.Num(3.25), Quality: edge.Maintenance},
		{Point: "TT-1", TS: at(8, 30, 0, 160), Quality: edge.Stale},
		{Point: "SW-1", TS: at(8, 30, 0, 170), Value: edge.BoolValue(true), Quality: edge.Good},
	}}
}

func minuteMessage() *edge.Message {
	return &edge.Message{Seq: 7, Kind: edge.KindStat, Created: at(8, 31, 0, 10), Stats: []edge.Stat{
		{Point: "GT-101", Period: edge.Minute, Start: at(8, 30, 0, 0), Avg: 12.25, Min: 11, Max: 13.5, Count: 60, Quality: edge.Good},
		{Point: "GT-102", Period: edge.Minute, Start: at(8, 30, 0, 0), Count: 0, Quality: edge.CommFault},
		{Point: "PT-1", Period: edge.Minute, Start: at(8, 30, 0, 0), Avg: 1, Min: 1, Max: 1, Count: 60, Quality: edge.Good},
	}}
}

func hourMessage() *edge.Message {
	return &edge.Message{Seq: 2008, Kind: edge.KindStat, Created: at(9, 0, 0, 300), Stats: []edge.Stat{
		{Point: "GT-101", Period: edge.Hour, Start: at(8, 0, 0, 0), Avg: 20.5, Min: -0.5, Max: 101, Count: 3600, Quality: edge.OverRange},
	}}
}

func encodeAll(t *testing.T, ps []Packet, o FrameOpts) []byte {
	t.Helper()
	var out []byte
	for _, p := range ps {
		b, err := Encode(p, o)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestEncoderGolden compares the encoder with frames written by hand.
func TestEncoderGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		v      Version
		m      *edge.Message
		resend bool
	}{
		{"rt_2017", V2017, rtMessage(), false},
		{"rt_2017", V2017, rtMessage(), true}, // 2017 has no marker: a resend is the same bytes
		{"rt_2025", V2025, rtMessage(), false},
		{"rt_2025_resend", V2025, rtMessage(), true},
		{"minute_2017", V2017, minuteMessage(), false},
		{"hour_2017", V2017, hourMessage(), false},
	} {
		t.Run(fmt.Sprintf("%s/resend=%v", tc.golden, tc.resend), func(t *testing.T) {
			e := testEncoder(tc.v)
			if err := e.Check(); err != nil {
				t.Fatal(err)
			}
			ps, err := e.Packets(tc.m, tc.resend)
			if err != nil {
				t.Fatal(err)
			}
			got := encodeAll(t, ps, FrameOpts{})
			if want := golden(t, tc.golden); !bytes.Equal(got, want) {
				t.Errorf("encoded\n%s\nwant\n%s", got, want)
			}
			again, _ := e.Packets(tc.m, tc.resend)
			if !bytes.Equal(encodeAll(t, again, FrameOpts{}), got) {
				t.Error("not deterministic")
			}
		})
	}
}

func TestDataFlag(t *testing.T) {
	want := map[edge.Quality]byte{
		edge.Good: 'N', edge.CommFault: 'B', edge.Exception: 'D', edge.SensorFault: 'D', edge.Stale: 'B',
		edge.OverRange: 'T', edge.UnderRange: 'T', edge.Maintenance: 'M',
	}
	for q := edge.Quality(0); q.Valid(); q++ {
		if got := DataFlag(q); got != want[q] {
			t.Errorf("DataFlag(%s) = %c, want %c", q, got, want[q])
		}
	}
}

func TestQN(t *testing.T) {
	e := testEncoder(V2017)
	for _, tc := range []struct {
		seq     uint64
		created time.Time
		want    string
	}{
		{1042, at(8, 30, 0, 500), "20240501083000042"},
		{7, at(8, 31, 0, 10), "20240501083100007"},
		{1000, at(23, 59, 59, 999), "20240501235959000"},
		{999, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), "20240501080000999"}, // in the configured zone
	} {
		if got := e.QN(&edge.Message{Seq: tc.seq, Created: tc.created}); got != tc.want {
			t.Errorf("QN(seq %d, %s) = %s, want %s", tc.seq, tc.created, got, tc.want)
		}
	}
	// 1,000 seqs created in one second all get different QNs.
	seen := map[string]uint64{}
	for s := uint64(5000); s < 6000; s++ {
		qn := e.QN(&edge.Message{Seq: s, Created: at(8, 0, 0, int(s%1000))})
		if o, dup := seen[qn]; dup {
			t.Fatalf("seqs %d and %d share QN %s", o, s, qn)
		}
		seen[qn] = s
	}
}

func TestNothingToSend(t *testing.T) {
	e := testEncoder(V2025)
	for name, m := range map[string]*edge.Message{
		"event":     {Seq: 1, Kind: edge.KindEvent, Created: at(8, 0, 0, 0), Events: []edge.Event{{Type: edge.EventAlarm, State: edge.StateRaised, Point: "GT-101"}}},
		"no factor": {Seq: 2, Kind: edge.KindRTD, Created: at(8, 0, 0, 0), Readings: []edge.Reading{{Point: "PT-1", Value: edge.Num(1)}}},
		"stat without factor": {Seq: 3, Kind: edge.KindStat, Created: at(8, 0, 0, 0), Stats: []edge.Stat{
			{Point: "PT-1", Period: edge.Minute, Count: 1}}},
		"empty rtd": {Seq: 4, Kind: edge.KindRTD},
		// A poll group's tick is not sent over HJ 212: the rtd snapshot is.
		"rt with factors": {Seq: 5, Kind: edge.KindRT, Created: at(8, 0, 0, 0), Readings: []edge.Reading{{Point: "GT-101", Value: edge.Num(1)}}},
	} {
		ps, err := e.Packets(m, false)
		if err != nil || len(ps) != 0 {
			t.Errorf("%s: %d packets, %v; want none", name, len(ps), err)
		}
	}
}

func TestRealTimeValues(t *testing.T) {
	e := testEncoder(V2017)
	for _, tc := range []struct {
		r    edge.Reading
		want string
	}{
		{edge.Reading{Value: edge.Num(0.000001), Quality: edge.Good}, "a21026-Rtd=0.000001,a21026-Flag=N"},
		{edge.Reading{Value: edge.Num(1e21), Quality: edge.Good}, "a21026-Rtd=1000000000000000000000,a21026-Flag=N"},
		{edge.Reading{Value: edge.Num(-3), Quality: edge.UnderRange}, "a21026-Rtd=-3,a21026-Flag=T"},
		{edge.Reading{Value: edge.Num(math.NaN()), Quality: edge.SensorFault}, "a21026-Flag=D"},
		{edge.Reading{Value: edge.Num(math.Inf(1)), Quality: edge.Good}, "a21026-Flag=N"},
		{edge.Reading{Value: edge.Str("open"), Quality: edge.Good}, "a21026-Flag=N"},
		{edge.Reading{Value: edge.BoolValue(false), Quality: edge.Good}, "a21026-Rtd=0,a21026-Flag=N"},
		{edge.Reading{Value: edge.Num(7), Quality: edge.Exception}, "a21026-Flag=D"},
	} {
		r := tc.r
		r.Point = "GT-101"
		cp, ok := e.RealTimeCP(&edge.Message{Kind: edge.KindRT, Created: at(8, 0, 0, 0), Readings: []edge.Reading{r}})
		if !ok || cp != "DataTime=20240501080000;"+tc.want {
			t.Errorf("%v %s: %q", r.Value, r.Quality, cp)
		}
	}
}

// TestBigMessageSplits: an rtd message over 1024 bytes goes out as PNO
// parts under one QN, the same parts on a resend but for RF.
func TestBigMessageSplits(t *testing.T) {
	factors := map[string]string{}
	m := &edge.Message{Seq: 77, Kind: edge.KindRTD, Created: at(8, 0, 0, 0)}
	for i := range 120 {
		p := fmt.Sprintf("P%03d", i)
		factors[p] = fmt.Sprintf("a%05d", i)
		m.Readings = append(m.Readings, edge.Reading{Point: p, TS: at(8, 0, 0, 0), Value: edge.Num(float64(i) + 0.125), Quality: edge.Good})
	}
	e := &Encoder{Version: V2025, ST: "32", PW: "123456", MN: "MN0001", Ack: true, Factors: factors, Location: cst}
	first, err := e.Packets(m, false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Packets(m, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) < 3 || len(again) != len(first) {
		t.Fatalf("%d parts, resend %d", len(first), len(again))
	}
	for i := range first {
		a, b := first[i], again[i]
		if a.QN != e.QN(m) || a.PNO != i+1 || a.PNUM != len(first) || !a.IsSplit() || a.Flag != MakeFlag(V2025, true, true) {
			t.Errorf("part %d: %+v", i+1, a)
		}
		b.RF = false
		if a != b || a.RF || !again[i].RF {
			t.Errorf("part %d: resend differs beyond RF", i+1)
		}
	}
	whole, err := Join(first)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := e.RealTimeCP(m)
	if whole.CP != cp {
		t.Error("the parts do not join to the message's content")
	}
}

// TestMixedStats: a stat message with minute and hour statistics goes out
// as one split series under its QN, each part with its own CN.
func TestMixedStats(t *testing.T) {
	m := minuteMessage()
	m.Stats = append(m.Stats, hourMessage().Stats...)
	ps, err := testEncoder(V2017).Packets(m, false)
	if err != nil {
		t.Fatal(err)
	}
	var cns []string
	for _, p := range ps {
		cns = append(cns, fmt.Sprintf("%s:%d/%d", p.CN, p.PNO, p.PNUM))
		if p.QN != "20240501083100007" || !p.IsSplit() {
			t.Errorf("%+v", p)
		}
	}
	if strings.Join(cns, ",") != "2051:1/2,2061:2/2" {
		t.Errorf("parts %v", cns)
	}
}

func TestHistoryPackets(t *testing.T) {
	e := testEncoder(V2017)
	m := minuteMessage()
	ps, err := e.History(m, CNMinute, "20240501100000124", at(8, 0, 0, 0), at(8, 30, 0, 0))
	if err != nil || len(ps) != 1 {
		t.Fatalf("%d packets, %v", len(ps), err)
	}
	p := ps[0]
	if p.QN != "20240501100000124" || p.Flag != 4 || p.CN != CNMinute || p.RF {
		t.Errorf("%+v", p)
	}
	if ps, _ := e.History(m, CNMinute, "1", at(8, 31, 0, 0), at(9, 0, 0, 0)); len(ps) != 0 {
		t.Error("statistics outside the range sent")
	}
	if ps, _ := e.History(m, CNHour, "1", at(0, 0, 0, 0), at(23, 0, 0, 0)); len(ps) != 0 {
		t.Error("minute statistics sent for an hour request")
	}
}

func TestEncoderCheck(t *testing.T) {
	e := testEncoder(V2017)
	e.MN = ""
	e.PW = "a;b"
	e.Factors = map[string]string{"X": "a-1", "Y": ""}
	err := e.Check()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"MN is required", "PW", `point X: factor code "a-1"`, `point Y: factor code ""`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %q", err, want)
		}
	}
}
