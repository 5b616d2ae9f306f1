package hj212

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/edge"
)

// verdict is what the test platform does with a data packet.
type verdict int

const (
	ackNamed   verdict = iota // 9014 naming the packet's PNUM/PNO when split
	ackUnnamed                // 9014 with the QN only
	drop                      // no answer
	hangUp                    // close the connection instead of answering
)

type partKey struct {
	qn  string
	pno int
}

type receipt struct {
	conn  int
	p     Packet
	raw   []byte
	acked bool
}

// platform is a test HJ 212 platform on 127.0.0.1:0. It reads the client's
// frames, answers or drops each data packet as decide says, and records
// everything.
type platform struct {
	t      *testing.T
	ln     net.Listener
	o      FrameOpts
	v      Version
	decide func(conn, frame int, p Packet, n int) verdict

	mu       sync.Mutex
	receipts map[partKey][]*receipt
	acked    map[partKey]bool
	other    []Packet // everything but data packets
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newPlatform(t *testing.T, v Version, o FrameOpts, decide func(conn, frame int, p Packet, n int) verdict) *platform {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pf := &platform{t: t, ln: ln, o: o, v: v, decide: decide, receipts: map[partKey][]*receipt{}, acked: map[partKey]bool{}}
	pf.wg.Add(1)
	go pf.accept()
	return pf
}

func (pf *platform) addr() string { return pf.ln.Addr().String() }

func (pf *platform) accept() {
	defer pf.wg.Done()
	for {
		c, err := pf.ln.Accept()
		if err != nil {
			return
		}
		pf.mu.Lock()
		pf.conns = append(pf.conns, c)
		n := len(pf.conns)
		pf.mu.Unlock()
		pf.wg.Add(1)
		go pf.serve(n, c)
	}
}

func isData(cn string) bool { return cn == CNRealTime || cn == CNMinute || cn == CNHour }

func (pf *platform) serve(conn int, c net.Conn) {
	defer pf.wg.Done()
	defer c.Close()
	r := NewReader(c, pf.o)
	frame := 0
	for {
		p, raw, err := r.Next()
		if err != nil {
			if errors.Is(err, ErrFrame) || errors.Is(err, ErrCRC) {
				pf.t.Errorf("platform: bad frame from the client: %v: %q", err, raw)
				continue
			}
			return
		}
		if !isData(p.CN) {
			pf.mu.Lock()
			pf.other = append(pf.other, p)
			pf.mu.Unlock()
			continue
		}
		frame++
		k := partKey{p.QN, p.PNO}
		pf.mu.Lock()
		rc := &receipt{conn: conn, p: p, raw: raw}
		n := len(pf.receipts[k])
		pf.receipts[k] = append(pf.receipts[k], rc)
		v := pf.decide(conn, frame, p, n)
		if v == ackNamed || v == ackUnnamed {
			rc.acked = true
			pf.acked[k] = true // booked before the client can see the 9014
		}
		pf.mu.Unlock()
		switch v {
		case hangUp:
			return
		case ackNamed, ackUnnamed:
			a := Packet{QN: p.QN, ST: STInteraction, CN: CNDataAck, PW: p.PW, MN: p.MN, Flag: MakeFlag(pf.v, false, false)}
			if v == ackNamed && p.IsSplit() {
				a.Flag |= FlagSplit
				a.PNUM, a.PNO = p.PNUM, p.PNO
			}
			b, err := Encode(a, pf.o)
			if err != nil {
				pf.t.Error(err)
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}
}

func (pf *platform) isAcked(k partKey) bool {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	return pf.acked[k]
}

func (pf *platform) close() {
	pf.ln.Close()
	pf.mu.Lock()
	for _, c := range pf.conns {
		c.Close()
	}
	pf.mu.Unlock()
	pf.wg.Wait()
}

// checkedStore fails the test when a seq is acknowledged before the
// platform answered every packet of it, or when a seq with nothing to send
// was sent.
type checkedStore struct {
	*buffer.Memory
	pf  *platform
	enc *Encoder
	mu  sync.Mutex
	bad []string
}

func (s *checkedStore) Ack(uplink string, seqs ...uint64) error {
	for _, seq := range seqs {
		ms, err := s.Memory.Unacked(uplink, seq, seq+1, 1)
		if err != nil || len(ms) != 1 {
			s.fail(fmt.Sprintf("seq %d acknowledged twice or unknown (%v)", seq, err))
			continue
		}
		parts, _ := s.enc.Packets(ms[0], false)
		qn := s.enc.QN(ms[0])
		if len(parts) == 0 {
			s.pf.mu.Lock()
			for k := range s.pf.receipts {
				if k.qn == qn {
					s.fail(fmt.Sprintf("seq %d (%s) has nothing for HJ 212 but was sent", seq, ms[0].Kind))
				}
			}
			s.pf.mu.Unlock()
		}
		for _, p := range parts {
			if !s.pf.isAcked(partKey{p.QN, p.PNO}) {
				s.fail(fmt.Sprintf("seq %d acknowledged in the buffer before the platform answered QN %s PNO %d", seq, p.QN, p.PNO))
			}
		}
	}
	return s.Memory.Ack(uplink, seqs...)
}

func (s *checkedStore) fail(msg string) {
	s.mu.Lock()
	s.bad = append(s.bad, msg)
	s.mu.Unlock()
}

// e2eFactors covers the test messages' points.
func e2eFactors() map[string]string {
	f := map[string]string{}
	for k, v := range testFactors {
		f[k] = v
	}
	for i := range 120 {
		f[fmt.Sprintf("P%03d", i)] = fmt.Sprintf("a%05d", i)
	}
	return f
}

// mixedMessage is the i-th message of a mix: small rt, big rt (split),
// minute stats, an event, rt of points without factor, hour stats.
func mixedMessage(i int, created time.Time) *edge.Message {
	switch i % 6 {
	case 0:
		m := rtMessage()
		m.Created = created
		return m
	case 1:
		m := &edge.Message{Kind: edge.KindRT, Created: created}
		for j := range 120 {
			m.Readings = append(m.Readings, edge.Reading{Point: fmt.Sprintf("P%03d", j), TS: created, Value: edge.Num(float64(i*1000+j) / 8), Quality: edge.Good})
		}
		return m
	case 2:
		m := minuteMessage()
		m.Created = created
		return m
	case 3:
		return &edge.Message{Kind: edge.KindEvent, Created: created, Events: []edge.Event{{Type: edge.EventAlarm, State: edge.StateRaised, Point: "GT-101", TS: created, Level: "H"}}}
	case 4:
		return &edge.Message{Kind: edge.KindRT, Created: created, Readings: []edge.Reading{{Point: "PT-9", TS: created, Value: edge.Num(1), Quality: edge.Good}}}
	}
	m := hourMessage()
	m.Created = created
	return m
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("HJ212_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func allAcked(s buffer.Store) bool {
	ms, err := s.Unacked("hj212", 1, 0, 1)
	return err == nil && len(ms) == 0
}

// TestEndToEnd drives the client against a platform that answers some
// packets, drops others (some more often than ReCount allows, so that
// connections are dropped) and hangs up once: every packet not answered is
// sent again (RF=1 in 2025) until it is, and every seq ends acknowledged in
// the buffer, never before the platform answered all its packets.
func TestEndToEnd(t *testing.T) {
	key := []byte("0123456789abcdef")
	for _, tc := range []struct {
		name    string
		version string
		enc     string // SM4 encoding, "" for none
	}{
		{"2017", "2017", ""},
		{"2025", "2025", ""},
		{"2025-sm4-raw", "2025", EncodingRaw},
		{"2025-sm4-hex", "2025", EncodingHex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, _ := ParseVersion(tc.version)
			var fo FrameOpts
			if tc.enc != "" {
				c, err := NewCipher(key, tc.enc)
				if err != nil {
					t.Fatal(err)
				}
				fo.Cipher = c
			}
			hungUp := false
			pf := newPlatform(t, v, fo, func(conn, frame int, p Packet, n int) verdict {
				seq, _ := strconv.Atoi(p.QN[14:]) // seq mod 1000 (our seqs stay below 1000)
				switch {
				case conn == 1 && frame == 12 && !hungUp:
					hungUp = true
					return hangUp
				case seq%7 == 0 && n < 3: // ReCount+1 sends: the connection is dropped
					return drop
				case seq%5 == 0 && n < 2:
					return drop
				case seq%3 == 0 && n < 1:
					return drop
				case seq%2 == 0:
					return ackUnnamed
				}
				return ackNamed
			})
			defer pf.close()

			mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{"hj212"}}, 0)
			defer mem.Close()
			o := DefaultOpts()
			o.Address, o.Version, o.MN, o.Factors, o.Location = pf.addr(), tc.version, "MN0001", e2eFactors(), cst
			o.OverTime, o.ReCount, o.Window = 150*time.Millisecond, 2, 4
			o.ReconnectMin, o.ReconnectMax = 20*time.Millisecond, 100*time.Millisecond
			o.Logger = testLogger(t)
			if tc.enc != "" {
				o.SM4Key, o.SM4Encoding = key, tc.enc
			}
			// The backlog: there before the client starts (appended by an
			// earlier run of the collector).
			start := at(8, 0, 0, 0)
			var msgs []*edge.Message
			for i := range 30 {
				msgs = append(msgs, mixedMessage(i, start.Add(time.Duration(i)*time.Second)))
			}
			if err := mem.Append(context.Background(), msgs...); err != nil {
				t.Fatal(err)
			}
			backlogTo := mem.LastSeq()
			store := &checkedStore{Memory: mem, pf: pf}
			o.Store = store
			c, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			store.enc = c.Encoder()

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					cancel()
					if err := <-done; err != nil {
						t.Errorf("Run: %v", err)
					}
				}
			}
			defer stop()

			// Live messages, appended while the client is connected.
			waitFor(t, 5*time.Second, "the first packets", func() bool { return c.Stats().Sent >= 3 })
			for i := 30; i < 60; i++ {
				m := mixedMessage(i, start.Add(time.Duration(i)*time.Second))
				if err := mem.Append(context.Background(), m); err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, m)
				time.Sleep(5 * time.Millisecond)
			}
			waitFor(t, 15*time.Second, "every seq acknowledged", func() bool { return allAcked(mem) })
			stop()

			for _, b := range store.bad {
				t.Error(b)
			}
			st := c.Stats()
			t.Logf("stats: %+v", st)
			if st.Timeouts == 0 || st.Connects < 3 {
				t.Errorf("stats %+v: want connections dropped after ReCount and on the hang-up", st)
			}
			pf.mu.Lock()
			defer pf.mu.Unlock()
			skipped, liveFirstPlain := 0, false
			for _, m := range msgs {
				parts, err := c.Encoder().Packets(m, false)
				if err != nil {
					t.Fatal(err)
				}
				if len(parts) == 0 {
					skipped++
					continue
				}
				for _, p := range parts {
					rs := pf.receipts[partKey{p.QN, p.PNO}]
					if len(rs) == 0 {
						t.Errorf("seq %d QN %s PNO %d never reached the platform", m.Seq, p.QN, p.PNO)
						continue
					}
					answered := false
					for i, r := range rs {
						answered = answered || r.acked
						if r.p.CP != p.CP || r.p.Flag != p.Flag || r.p.PNUM != p.PNUM {
							t.Errorf("seq %d PNO %d receipt %d differs from the encoding: %+v", m.Seq, p.PNO, i, r.p)
						}
						switch {
						case v == V2017 && !bytes.Equal(r.raw, rs[0].raw):
							t.Errorf("seq %d PNO %d: 2017 resend %d is not the same bytes", m.Seq, p.PNO, i)
						case v == V2017 && r.p.RF:
							t.Errorf("seq %d: RF in 2017", m.Seq)
						case v == V2025 && (i > 0 || m.Seq <= backlogTo) && !r.p.RF:
							t.Errorf("seq %d PNO %d receipt %d (backlog %v): sent again without RF=1", m.Seq, p.PNO, i, m.Seq <= backlogTo)
						case v == V2025 && i == 0 && !r.p.RF:
							liveFirstPlain = true
						}
					}
					if !answered {
						t.Errorf("seq %d QN %s PNO %d: no receipt answered, yet acknowledged", m.Seq, p.QN, p.PNO)
					}
				}
			}
			if v == V2025 && !liveFirstPlain {
				t.Error("no live packet went out without RF")
			}
			if st.Skipped != uint64(skipped) {
				t.Errorf("%d seqs skipped, want %d (events and points without factor)", st.Skipped, skipped)
			}
		})
	}
}

// TestAckOff: without 9014s, a seq is acknowledged once written.
func TestAckOff(t *testing.T) {
	pf := newPlatform(t, V2017, FrameOpts{}, func(int, int, Packet, int) verdict { return drop })
	defer pf.close()
	mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{"hj212"}}, 0)
	defer mem.Close()
	o := DefaultOpts()
	o.Address, o.MN, o.Factors, o.Location, o.Store, o.Ack = pf.addr(), "MN0001", e2eFactors(), cst, mem, false
	o.Logger = testLogger(t)
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*edge.Message
	for i := range 12 {
		msgs = append(msgs, mixedMessage(i, at(8, 0, i, 0)))
	}
	mem.Append(context.Background(), msgs...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, 10*time.Second, "every seq acknowledged", func() bool { return allAcked(mem) })
	want := 0
	for _, m := range msgs {
		ps, _ := c.Encoder().Packets(m, false)
		want += len(ps)
	}
	waitFor(t, 5*time.Second, "every packet at the platform", func() bool {
		pf.mu.Lock()
		defer pf.mu.Unlock()
		n := 0
		for _, rs := range pf.receipts {
			n += len(rs)
		}
		return n == want
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for k, rs := range pf.receipts {
		if len(rs) != 1 || rs[0].p.AckWanted() {
			t.Errorf("QN %s PNO %d: %d receipts, Flag %d", k.qn, k.pno, len(rs), rs[0].p.Flag)
		}
	}
}

// scripted is one connection to the client, driven step by step.
type scripted struct {
	t    *testing.T
	conn net.Conn
	r    *Reader
	o    FrameOpts
}

func (s *scripted) send(p Packet) {
	s.t.Helper()
	b, err := Encode(p, s.o)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.conn.Write(b); err != nil {
		s.t.Fatal(err)
	}
}

// next returns the next packet that is not a heartbeat.
func (s *scripted) next() Packet {
	s.t.Helper()
	for {
		s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, raw, err := s.r.Next()
		if err != nil {
			s.t.Fatalf("reading the client: %v (%q)", err, raw)
		}
		if p.CN != CNHeartbeat {
			return p
		}
	}
}

func (s *scripted) expect(cn, qn, cp string) Packet {
	s.t.Helper()
	p := s.next()
	if p.CN != cn || p.QN != qn || (cp != "*" && p.CP != cp) {
		s.t.Fatalf("got CN %s QN %s CP %q, want CN %s QN %s CP %q", p.CN, p.QN, p.CP, cn, qn, cp)
	}
	if p.MN != "MN0001" || p.PW != "123456" {
		s.t.Errorf("answer with MN %q PW %q", p.MN, p.PW)
	}
	if (cn == CNQnRtn || cn == CNExeRtn) && p.ST != STInteraction {
		s.t.Errorf("CN %s with ST %s, want 91", cn, p.ST)
	}
	if p.AckWanted() {
		s.t.Errorf("CN %s asks for an answer", cn)
	}
	return p
}

// TestCommands: CN 1000, 1011, 1012, 2051 and 2061 history, and requests
// with a wrong PW or MN or an unknown CN, answered as the standard wants.
func TestCommands(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{"hj212"}}, 0)
	defer mem.Close()
	// Statistics for the history: minute stats of 08:30 and 08:31, hour
	// stats of 08:00, already acknowledged (sent long ago).
	m1, m2, h := minuteMessage(), minuteMessage(), hourMessage()
	m2.Created = at(8, 32, 0, 5)
	for i := range m2.Stats {
		m2.Stats[i].Start = at(8, 31, 0, 0)
	}
	mem.Append(context.Background(), m1, m2, h)
	mem.Ack("hj212", 1, 2, 3)

	now := at(10, 0, 0, 0)
	o := DefaultOpts()
	o.Address, o.MN, o.Factors, o.Location, o.Store = ln.Addr().String(), "MN0001", testFactors, cst, mem
	o.Version = "2025"
	o.Heartbeat = 30 * time.Millisecond
	o.Now = func() time.Time { return now }
	o.Logger = testLogger(t)
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &scripted{t: t, conn: conn, r: NewReader(conn, FrameOpts{})}

	// Heartbeats first (2025), in plaintext.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb, _, err := s.r.Next()
	if err != nil || hb.CN != CNHeartbeat || hb.Flag != 8 || hb.MN != "MN0001" {
		t.Fatalf("first packet %+v, %v: want a 9015 heartbeat with Flag 8", hb, err)
	}

	req := func(qn, cn, cp string) Packet {
		return Packet{QN: qn, ST: "32", CN: cn, PW: "123456", MN: "MN0001", Flag: MakeFlag(V2025, true, false), CP: cp}
	}
	// 1000: OverTime and ReCount.
	s.send(req("20240501100000001", CNSetOverTime, "OverTime=5;ReCount=1"))
	s.expect(CNQnRtn, "20240501100000001", "QnRtn=1")
	s.expect(CNExeRtn, "20240501100000001", "ExeRtn=1")
	if ot, rc := c.Limits(); ot != 5*time.Second || rc != 1 {
		t.Errorf("after 1000: OverTime %s ReCount %d", ot, rc)
	}
	s.send(req("20240501100000002", CNSetOverTime, "OverTime=0;ReCount=x"))
	s.expect(CNQnRtn, "20240501100000002", "QnRtn=1")
	s.expect(CNExeRtn, "20240501100000002", "ExeRtn=3")

	// 1011: the field time, then the execution result.
	s.send(req("20240501100000003", CNGetTime, "PolId=w01018"))
	s.expect(CNQnRtn, "20240501100000003", "QnRtn=1")
	up := s.expect(CNGetTime, "20240501100000003", "PolId=w01018;SystemTime=20240501100000")
	if up.ST != "32" {
		t.Errorf("1011 upload with ST %s", up.ST)
	}
	s.expect(CNExeRtn, "20240501100000003", "ExeRtn=1")

	// 1012: answered, not obeyed.
	s.send(req("20240501100000004", CNSetTime, "SystemTime=20240501120000"))
	s.expect(CNQnRtn, "20240501100000004", "QnRtn=1")
	s.expect(CNExeRtn, "20240501100000004", "ExeRtn=3")

	// 2051 history: the minute statistics starting in the range, under the
	// request's QN, no answer wanted; then ExeRtn=1.
	s.send(req("20240501100000005", CNMinute, "BeginTime=20240501083000;EndTime=20240501083100"))
	s.expect(CNQnRtn, "20240501100000005", "QnRtn=1")
	for _, dt := range []string{"20240501083000", "20240501083100"} {
		p := s.expect(CNMinute, "20240501100000005", "*")
		if !strings.HasPrefix(p.CP, "DataTime="+dt+";a21026-Avg=12.25") || p.RF || p.Flag != 8 {
			t.Errorf("history packet %+v", p)
		}
	}
	s.expect(CNExeRtn, "20240501100000005", "ExeRtn=1")
	// 2061 with nothing in range: no data.
	s.send(req("20240501100000006", CNHour, "BeginTime=20240502000000;EndTime=20240502235959"))
	s.expect(CNQnRtn, "20240501100000006", "QnRtn=1")
	s.expect(CNExeRtn, "20240501100000006", "ExeRtn=100")
	// 2061 in range.
	s.send(req("20240501100000007", CNHour, "BeginTime=20240501080000;EndTime=20240501080000"))
	s.expect(CNQnRtn, "20240501100000007", "QnRtn=1")
	s.expect(CNHour, "20240501100000007", "DataTime=20240501080000;a21026-Avg=20.5,a21026-Min=-0.5,a21026-Max=101,a21026-Flag=T")
	s.expect(CNExeRtn, "20240501100000007", "ExeRtn=1")
	// Bad times.
	s.send(req("20240501100000008", CNMinute, "BeginTime=2024"))
	s.expect(CNQnRtn, "20240501100000008", "QnRtn=1")
	s.expect(CNExeRtn, "20240501100000008", "ExeRtn=3")

	// Wrong PW, wrong MN, unknown command.
	bad := req("20240501100000009", CNGetTime, "")
	bad.PW = "000000"
	s.send(bad)
	s.expect(CNQnRtn, "20240501100000009", "QnRtn=3")
	bad = req("20240501100000010", CNGetTime, "")
	bad.MN = "OTHER"
	s.send(bad)
	s.expect(CNQnRtn, "20240501100000010", "QnRtn=4")
	s.send(req("20240501100000011", "3011", "PolId=w01018"))
	s.expect(CNQnRtn, "20240501100000011", "QnRtn=8") // a CN we do not know: CN error
	bad = req("20240501100000013", CNGetTime, "")
	bad.ST = "21"
	s.send(bad)
	s.expect(CNQnRtn, "20240501100000013", "QnRtn=5")
	bad = req("20240501100000014", CNGetTime, "")
	bad.Flag = MakeFlag(V2017, true, false) // another protocol version
	s.send(bad)
	s.expect(CNQnRtn, "20240501100000014", "QnRtn=6")

	// Garbage is skipped; a command with a bad CRC is answered QnRtn=9;
	// the connection goes on.
	conn.Write([]byte("garbage##12ab\r\n"))
	conn.Write(reframe("QN=1;ST=32;CN=1011;PW=123456;MN=MN0001;Flag=9;CP=&&&&", "0000"))
	s.expect(CNQnRtn, "1", "QnRtn=9")
	s.send(req("20240501100000012", CNGetTime, ""))
	s.expect(CNQnRtn, "20240501100000012", "QnRtn=1")
	s.expect(CNGetTime, "20240501100000012", "SystemTime=20240501100000")
	s.expect(CNExeRtn, "20240501100000012", "ExeRtn=1")
}

// TestReconnect: a platform that is down at first, then up; the client
// keeps trying and sends the backlog once it is.
func TestReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens yet
	mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{"hj212"}}, 0)
	defer mem.Close()
	mem.Append(context.Background(), mixedMessage(0, at(8, 0, 0, 0)))
	o := DefaultOpts()
	o.Address, o.MN, o.Factors, o.Location, o.Store = addr, "MN0001", testFactors, cst, mem
	o.ReconnectMin, o.ReconnectMax = 20*time.Millisecond, 40*time.Millisecond
	o.Logger = testLogger(t)
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(150 * time.Millisecond)
	if c.Stats().Connects != 0 || c.Stats().LastError == "" {
		t.Errorf("stats %+v: want failed connects", c.Stats())
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot listen on %s again: %v (CI must run this proof)", addr, err)
		}
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	pf := &platform{t: t, ln: ln2, v: V2017, decide: func(int, int, Packet, int) verdict { return ackNamed },
		receipts: map[partKey][]*receipt{}, acked: map[partKey]bool{}}
	pf.wg.Add(1)
	go pf.accept()
	defer pf.close()
	waitFor(t, 5*time.Second, "the backlog acknowledged", func() bool { return allAcked(mem) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewErrors(t *testing.T) {
	mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{"hj212"}}, 0)
	defer mem.Close()
	o := DefaultOpts()
	o.Address, o.Version, o.MN, o.Store = "nohost", "2016", "", nil
	o.SM4Key = []byte("short")
	o.Factors = map[string]string{"X": "a;1"}
	_, err := New(o)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Address", "Store is required", "version \"2016\"", "SM4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %q", err, want)
		}
	}
	o = DefaultOpts()
	o.Address, o.MN, o.Store, o.SM4Key = "127.0.0.1:1", "M", mem, []byte("0123456789abcdef")
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "2025") {
		t.Errorf("SM4 with 2017: %v", err)
	}
}
