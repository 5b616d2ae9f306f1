package hj212

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink"
	"github.com/hazwatch/edgecollector/uplink/uplinktest"
)

// standIn is a TCP stand-in HJ 212 platform for the uplink contract. It
// reads the client's frames by hand (length, segment fields, the RF=1 item
// and the CRC, without this package's decoder) and answers data packets with
// a CN=9014 naming their QN.
type standIn struct {
	t    *testing.T
	addr string

	mu        sync.Mutex
	ln        net.Listener
	conns     []net.Conn
	nconn     int
	receipts  []uplinktest.Receipt
	confirm   func(uint64) bool
	confirmed map[uint64]bool
	wg        sync.WaitGroup
}

func newStandIn(t *testing.T) uplinktest.Platform {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &standIn{t: t, addr: ln.Addr().String(), ln: ln, confirm: func(uint64) bool { return true }, confirmed: map[uint64]bool{}}
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(func() {
		p.mu.Lock()
		if p.ln != nil {
			p.ln.Close()
		}
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *standIn) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.nconn++
		n := p.nconn
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(n, c)
	}
}

// handFrame is what the stand-in reads of one frame.
type handFrame struct {
	qn, cn, pw, mn string
	flag           int
	rf             bool
}

// parseByHand reads "##dddd<segment>CCCC": the length and CRC are checked
// here, the fields split on ';' up to CP=&&.
func parseByHand(line []byte) (handFrame, error) {
	var f handFrame
	if len(line) < 10 || !bytes.HasPrefix(line, []byte("##")) {
		return f, fmt.Errorf("no ## header: %q", line)
	}
	n, err := strconv.Atoi(string(line[2:6]))
	if err != nil || len(line) != 6+n+4 {
		return f, fmt.Errorf("length field %q does not match %d bytes", line[2:6], len(line)-10)
	}
	seg := line[6 : 6+n]
	crc := uint16(0xFFFF)
	for _, b := range seg {
		crc = (crc >> 8) ^ uint16(b)
		for range 8 {
			if crc&1 != 0 {
				crc = (crc >> 1) ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	if got := strings.ToUpper(string(line[6+n:])); got != fmt.Sprintf("%04X", crc) {
		return f, fmt.Errorf("CRC %s, computed %04X", got, crc)
	}
	head, cp, ok := strings.Cut(string(seg), "CP=&&")
	if !ok {
		return f, fmt.Errorf("no CP in %q", seg)
	}
	for _, kv := range strings.Split(strings.TrimSuffix(head, ";"), ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "QN":
			f.qn = v
		case "CN":
			f.cn = v
		case "PW":
			f.pw = v
		case "MN":
			f.mn = v
		case "Flag":
			f.flag, _ = strconv.Atoi(v)
		}
	}
	f.rf = strings.HasPrefix(cp, "RF=1;")
	return f, nil
}

func (p *standIn) serve(conn int, c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), 1<<16)
	for sc.Scan() {
		f, err := parseByHand(bytes.TrimSuffix(sc.Bytes(), []byte("\r")))
		if err != nil {
			p.t.Errorf("stand-in platform: %v", err)
			continue
		}
		if f.cn != CNRealTime {
			continue
		}
		if len(f.qn) != 17 || f.flag&1 == 0 {
			p.t.Errorf("stand-in platform: data packet with QN %q, Flag %d (want a 17-digit QN and the answer bit)", f.qn, f.flag)
			continue
		}
		seq, _ := strconv.ParseUint(f.qn[14:], 10, 64) // seq mod 1000: the suite stays below
		p.mu.Lock()
		p.receipts = append(p.receipts, uplinktest.Receipt{Seq: seq, Resend: f.rf, Conn: conn, At: time.Now()})
		ok := p.confirm != nil && p.confirm(seq)
		if ok {
			p.confirmed[seq] = true
		}
		p.mu.Unlock()
		if ok {
			p.answer(c, f.qn)
		}
	}
}

// answer writes a 9014 for qn.
func (p *standIn) answer(c net.Conn, qn string) {
	b, err := Encode(Packet{QN: qn, ST: STInteraction, CN: CNDataAck, PW: "123456", MN: "MN0001", Flag: MakeFlag(V2025, false, false)}, FrameOpts{})
	if err != nil {
		p.t.Error(err)
		return
	}
	c.Write(b)
}

func (p *standIn) Receipts() []uplinktest.Receipt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uplinktest.Receipt(nil), p.receipts...)
}

func (p *standIn) SetConfirm(f func(uint64) bool) {
	p.mu.Lock()
	p.confirm = f
	p.mu.Unlock()
}

func (p *standIn) Confirmed(seq uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.confirmed[seq]
}

// Ack answers on the newest connection with a 9014 for each message's QN
// (its creation second in UTC and seq mod 1000, worked out here).
func (p *standIn) Ack(ms ...*edge.Message) {
	p.mu.Lock()
	var c net.Conn
	if n := len(p.conns); n > 0 {
		c = p.conns[n-1]
	}
	for _, m := range ms {
		p.confirmed[m.Seq] = true
	}
	p.mu.Unlock()
	if c == nil {
		return
	}
	for _, m := range ms {
		p.answer(c, m.Created.UTC().Format("20060102150405")+fmt.Sprintf("%03d", m.Seq%1000))
	}
}

func (p *standIn) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// Refuse closes the listener (nothing answers a connect) or listens again
// on the same address.
func (p *standIn) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.ln != nil {
		p.ln.Close()
		p.ln = nil
		return
	}
	if !on && p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Fatalf("cannot listen on %s again: %v", p.addr, err)
		}
		p.ln = ln
		p.wg.Add(1)
		go p.accept(ln)
	}
}

// TestContract runs the uplink contract against the stand-in platform,
// HJ 212-2025 (whose RF=1 marks resends), 9014 answers on.
func TestContract(t *testing.T) {
	uplinktest.RunContract(t, uplinktest.Transport{
		Name:     "hj212",
		Platform: newStandIn,
		Start: func(t *testing.T, pl uplinktest.Platform, store uplink.Store, o uplinktest.Opts) (func(), func() uplink.Stats) {
			p := pl.(*standIn)
			hs, ok := store.(Store)
			if !ok {
				t.Fatal("the contract's store has no time index")
			}
			co := DefaultOpts()
			co.Address, co.Version, co.MN, co.Factors, co.Store = p.addr, "2025", "MN0001", map[string]string{"P": "a01001"}, hs
			co.OverTime, co.ReCount, co.BacklogRate = o.Timeout, 99, o.BacklogRate
			co.ReconnectMin, co.ReconnectMax = 20*time.Millisecond, 100*time.Millisecond
			co.Heartbeat, co.Logger = -1, testLogger(t)
			c, err := New(co)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { c.Run(ctx); close(done) }()
			return func() { cancel(); <-done }, c.Stats
		},
		Message: func(i int) *edge.Message {
			now := time.Now()
			return &edge.Message{Kind: edge.KindRTD, Created: now, Readings: []edge.Reading{{Point: "P", TS: now, Value: edge.Num(float64(i)), Quality: edge.Good}}}
		},
	})
}
