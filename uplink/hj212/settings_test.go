package hj212

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/edge"
)

// TestPlatformSettings: the standard's own appendix frame (CN=1062
// RtdInterval=30, written byte for byte in testdata) is obeyed with 9011
// then 9012; 1061/1063 read the values; 1062/1064 out of bounds are
// refused; a failing OnSettings answers ExeRtn=2; 1072 changes the
// password for what follows; 2012/2011 stop and start real-time uploads;
// 1012 follows the clock policy; 2031 answers daily statistics computed
// from the hours in the buffer.
func TestPlatformSettings(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{"hj212"}}, 0)
	defer mem.Close()
	// Two hours of 2024-05-01 for a21026: avg 10 over 60 polls, avg 20
	// over 180: the day's average weighs them 12.5 x ... = 17.5.
	day := &edge.Message{Kind: edge.KindStat, Created: at(10, 0, 0, 0), Stats: []edge.Stat{
		{Point: "GT-101", Period: edge.Hour, Start: at(8, 0, 0, 0), Avg: 10, Min: 5, Max: 15, Count: 60, Quality: edge.Good},
		{Point: "GT-101", Period: edge.Hour, Start: at(9, 0, 0, 0), Avg: 20, Min: 2, Max: 30, Count: 180, Quality: edge.OverRange},
	}}
	mem.Append(context.Background(), day)
	mem.Ack("hj212", 1)

	var mu sync.Mutex
	var saved []Settings
	var clockSet []time.Time
	failNext := false
	o := DefaultOpts()
	o.Address, o.MN, o.PW, o.Factors, o.Location, o.Store = ln.Addr().String(), "010000A8900016F000169DC0", "100000", testFactors, cst, mem
	o.Settings = Settings{RtdInterval: 60 * time.Second}
	o.OnSettings = func(s Settings) error {
		mu.Lock()
		defer mu.Unlock()
		if failNext {
			failNext = false
			return errors.New("disk full")
		}
		saved = append(saved, s)
		return nil
	}
	o.ClockPolicy = "never"
	o.SetClock = func(t time.Time) error { mu.Lock(); clockSet = append(clockSet, t); mu.Unlock(); return nil }
	o.Logger = testLogger(t)
	o.Heartbeat = -1
	c, s := runScripted(t, ln, o)
	conn := s.conn
	expect := func(cn, qn, cp string) Packet {
		t.Helper()
		p := s.next()
		if p.CN != cn || p.QN != qn || (cp != "*" && p.CP != cp) {
			t.Fatalf("got CN %s QN %s CP %q, want CN %s QN %s CP %q", p.CN, p.QN, p.CP, cn, qn, cp)
		}
		return p
	}
	pw := "100000"
	req := func(qn, cn, cp string) Packet {
		return Packet{QN: qn, ST: "32", CN: cn, PW: pw, MN: o.MN, Flag: MakeFlag(V2017, true, false), CP: cp}
	}

	appendix, err := os.ReadFile("testdata/golden/appendix_2017_1062.frames")
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(appendix)
	// The two answers, byte for byte as the standard's field rules and its
	// appendix CRC give them (framed here, not by the package's encoder).
	for _, seg := range []string{
		"QN=20160801085857223;ST=91;CN=9011;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&",
		"QN=20160801085857223;ST=91;CN=9012;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&ExeRtn=1&&",
	} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, raw, err := s.r.Next()
		if want := frameByHand(seg); err != nil || string(raw) != want {
			t.Fatalf("answer to the appendix 1062:\n got %q (%v)\nwant %q", raw, err, want)
		}
	}
	mu.Lock()
	if st := c.Settings(); st.RtdInterval != 30*time.Second || len(saved) != 1 || saved[0].RtdInterval != 30*time.Second {
		t.Fatalf("after the appendix 1062: %+v, saved %+v", st, saved)
	}
	mu.Unlock()
	s.send(req("20240501100000001", CNGetRtdInt, ""))
	expect(CNQnRtn, "20240501100000001", "QnRtn=1")
	expect(CNGetRtdInt, "20240501100000001", "RtdInterval=30")
	expect(CNExeRtn, "20240501100000001", "ExeRtn=1")
	s.send(req("20240501100000002", CNSetRtdInt, "RtdInterval=10"))
	expect(CNQnRtn, "20240501100000002", "QnRtn=1")
	expect(CNExeRtn, "20240501100000002", "ExeRtn=3")

	s.send(req("20240501100000003", CNSetMinInt, "MinInterval=10"))
	expect(CNQnRtn, "20240501100000003", "QnRtn=1")
	expect(CNExeRtn, "20240501100000003", "ExeRtn=1")
	s.send(req("20240501100000004", CNSetMinInt, "MinInterval=7"))
	expect(CNQnRtn, "20240501100000004", "QnRtn=1")
	expect(CNExeRtn, "20240501100000004", "ExeRtn=3")
	s.send(req("20240501100000005", CNGetMinInt, ""))
	expect(CNQnRtn, "20240501100000005", "QnRtn=1")
	expect(CNGetMinInt, "20240501100000005", "MinInterval=10")
	expect(CNExeRtn, "20240501100000005", "ExeRtn=1")

	mu.Lock()
	failNext = true
	mu.Unlock()
	s.send(req("20240501100000006", CNSetRtdInt, "RtdInterval=120"))
	expect(CNQnRtn, "20240501100000006", "QnRtn=1")
	expect(CNExeRtn, "20240501100000006", "ExeRtn=2")
	if c.Settings().RtdInterval != 30*time.Second {
		t.Fatal("a setting that could not be saved was applied")
	}

	s.send(req("20240501100000007", CNSetPW, "NewPW=654321"))
	expect(CNQnRtn, "20240501100000007", "QnRtn=1")
	if p := expect(CNExeRtn, "20240501100000007", "ExeRtn=1"); p.PW != "100000" {
		t.Errorf("the 1072's own answer carries PW %s, want the old one", p.PW)
	}
	s.send(req("20240501100000008", CNGetTime, ""))
	expect(CNQnRtn, "20240501100000008", "QnRtn=3") // the old password is refused now
	pw = "654321"
	s.send(req("20240501100000009", CNGetRtdInt, ""))
	expect(CNQnRtn, "20240501100000009", "QnRtn=1")
	if p := expect(CNGetRtdInt, "20240501100000009", "RtdInterval=30"); p.PW != "654321" {
		t.Errorf("after 1072 packets carry PW %s", p.PW)
	}
	expect(CNExeRtn, "20240501100000009", "ExeRtn=1")

	s.send(req("20240501100000010", CNRealTimeOff, ""))
	expect(CNQnRtn, "20240501100000010", "QnRtn=1")
	expect(CNExeRtn, "20240501100000010", "ExeRtn=1")
	rtd := &edge.Message{Seq: 9, Kind: edge.KindRTD, Created: at(10, 0, 30, 0), Readings: []edge.Reading{{Point: "GT-101", Value: edge.Num(1), Quality: edge.Good}}}
	if ps, _ := c.Encoder().Packets(rtd, false); len(ps) != 0 || !c.Settings().RealTimeOff {
		t.Fatalf("after 2012 an rtd still gives %d packets", len(ps))
	}
	s.send(req("20240501100000011", CNRealTime, ""))
	expect(CNQnRtn, "20240501100000011", "QnRtn=1")
	expect(CNExeRtn, "20240501100000011", "ExeRtn=1")
	if ps, _ := c.Encoder().Packets(rtd, false); len(ps) != 1 {
		t.Fatalf("after 2011 an rtd gives %d packets", len(ps))
	}

	s.send(req("20240501100000012", CNSetTime, "SystemTime=20240501120000"))
	expect(CNQnRtn, "20240501100000012", "QnRtn=1")
	expect(CNExeRtn, "20240501100000012", "ExeRtn=3") // policy never
	mu.Lock()
	if len(clockSet) != 0 {
		t.Fatal("the clock was set under policy never")
	}
	mu.Unlock()

	s.send(req("20240501100000013", CNDay, "BeginTime=20240501000000;EndTime=20240501000000"))
	expect(CNQnRtn, "20240501100000013", "QnRtn=1")
	expect(CNDay, "20240501100000013", "DataTime=20240501000000;a21026-Avg=17.5,a21026-Min=2,a21026-Max=30,a21026-Flag=T")
	expect(CNExeRtn, "20240501100000013", "ExeRtn=1")

	mu.Lock()
	defer mu.Unlock()
	last := saved[len(saved)-1]
	if last.PW != "654321" || last.MinInterval != 10 || last.RealTimeOff || last.RtdInterval != 30*time.Second {
		t.Fatalf("what was persisted last: %+v", last)
	}
}

// TestClockPolicy: 1012 sets the clock with "always", with
// "when_unsynced" only while the clock is not synchronised.
func TestClockPolicy(t *testing.T) {
	for _, c := range []struct {
		policy string
		synced bool
		want   string
	}{{"always", true, "ExeRtn=1"}, {"when_unsynced", true, "ExeRtn=3"}, {"when_unsynced", false, "ExeRtn=1"}} {
		t.Run(c.policy, func(t *testing.T) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{"hj212"}}, 0)
			defer mem.Close()
			var mu sync.Mutex
			var set []time.Time
			o := DefaultOpts()
			o.Address, o.MN, o.Factors, o.Location, o.Store, o.Heartbeat = ln.Addr().String(), "MN0001", testFactors, cst, mem, -1
			o.ClockPolicy, o.ClockSynced = c.policy, func() bool { return c.synced }
			o.SetClock = func(t time.Time) error { mu.Lock(); set = append(set, t); mu.Unlock(); return nil }
			_, s := runScripted(t, ln, o)
			s.send(Packet{QN: "20240501100000001", ST: "32", CN: CNSetTime, PW: "123456", MN: "MN0001", Flag: MakeFlag(V2017, true, false), CP: "SystemTime=20240501120000"})
			s.expect(CNQnRtn, "20240501100000001", "QnRtn=1")
			s.expect(CNExeRtn, "20240501100000001", c.want)
			mu.Lock()
			defer mu.Unlock()
			if (c.want == "ExeRtn=1") != (len(set) == 1) || len(set) == 1 && !set[0].Equal(time.Date(2024, 5, 1, 12, 0, 0, 0, cst)) {
				t.Fatalf("clock set %v", set)
			}
		})
	}
}

// frameByHand frames a data segment by HJ 212-2017's rules with its appendix
// CRC (CRC16 with 0xA001, as the appendix's C code), apart from the
// package's own encoder.
func frameByHand(seg string) string {
	crc := uint16(0xFFFF)
	for i := 0; i < len(seg); i++ {
		crc = crc>>8 ^ uint16(seg[i])
		for range 8 {
			lsb := crc & 1
			crc >>= 1
			if lsb == 1 {
				crc ^= 0xA001
			}
		}
	}
	return fmt.Sprintf("##%04d%s%04X\r\n", len(seg), seg, crc)
}

// runScripted starts a client on o against the listener ln (its address in
// o.Address) and returns it with the script of the platform's side; both
// end with the test.
func runScripted(t *testing.T, ln net.Listener, o Opts) (*Client, *scripted) {
	t.Helper()
	o.Address = ln.Addr().String()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, &scripted{t: t, conn: conn, r: NewReader(conn, FrameOpts{})}
}
