package modbus

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// dtuStandIn is a serial server ("DTU") in a test: it passes bytes between
// a TCP connection and one end of a socat pty pair whose other end a
// pymodbus RTU slave serves, and can spoil, delay or hang up like a real one.
type dtuStandIn struct {
	tty    *os.File
	mode   atomic.Int32    // passThrough, corruptNext, garbageNext
	mu     sync.Mutex      // guards conn
	delays testpeer.Delays // holds the next answers back this long each, in turn
	conn   net.Conn
	wg     sync.WaitGroup
	ln     net.Listener
	count  atomic.Int32 // connections bridged
}

// newDTUStandIn starts a pymodbus RTU slave serving units on a pty pair and
// a stand-in DTU on the other end. It returns the stand-in and the slave's
// manifest.
func newDTUStandIn(t *testing.T, units string) (*dtuStandIn, []manifestEntry) {
	t.Helper()
	a, b := testpeer.PtyPair(t)
	_, m := startPySlave(t, "--rtu", a, "--units", units, "--baud", "19200")
	f, err := os.OpenFile(b, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &dtuStandIn{tty: f}
	d.wg.Add(1)
	go d.pumpAnswers()
	t.Cleanup(func() {
		if d.ln != nil {
			d.ln.Close()
		}
		d.hangUp()
		f.Close()
		d.wg.Wait()
	})
	return d, m
}

// pumpAnswers forwards what the slave writes to the current connection.
func (d *dtuStandIn) pumpAnswers() {
	defer d.wg.Done()
	buf := make([]byte, 512)
	for {
		n, err := d.tty.Read(buf)
		if err != nil {
			return
		}
		b := append([]byte(nil), buf[:n]...)
		if w := d.delays.Next(); w > 0 {
			time.Sleep(w)
		}
		switch d.mode.Swap(passThrough) {
		case corruptNext:
			b[len(b)-1] ^= 0x5A
		case garbageNext:
			d.send([]byte{0x01, 0x03, 0xFF, 0x00, 0x13, 0x37, 'D', 'T', 'U'})
			time.Sleep(5 * time.Millisecond)
		}
		d.send(b)
	}
}

// delayNext holds the next answers back, one delay per answer.
func (d *dtuStandIn) delayNext(w ...time.Duration) { d.delays.Add(w...) }

func (d *dtuStandIn) send(b []byte) {
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	if c != nil {
		c.Write(b)
	}
}

// bridge makes c the DTU's connection (closing an earlier one) and copies
// the collector's requests onto the line.
func (d *dtuStandIn) bridge(c net.Conn) {
	d.mu.Lock()
	old := d.conn
	d.conn = c
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	d.count.Add(1)
	d.wg.Add(1)
	go func() { defer d.wg.Done(); io.Copy(d.tty, c) }()
}

// hangUp drops the DTU's connection, as a DTU losing its 4G link does.
func (d *dtuStandIn) hangUp() {
	d.mu.Lock()
	c := d.conn
	d.conn = nil
	d.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// serve makes the stand-in a serial server the collector dials
// (modbus-rtu-tcp); it returns the address.
func (d *dtuStandIn) serve(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.ln = ln
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.bridge(c)
		}
	}()
	return ln.Addr().String()
}

// dialIn connects the stand-in to a collector's DTU listener and sends the
// registration packet.
func (d *dtuStandIn) dialIn(t *testing.T, addr string, reg []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if reg != nil {
		if _, err := c.Write(reg); err != nil {
			t.Fatal(err)
		}
	}
	d.bridge(c)
}

// faultCases runs the garbled, late and clean-answer checks of the serial
// line (TestRTUGarbledLine) over a DTU line.
func faultCases(t *testing.T, d *dtuStandIn, line *Line) {
	t.Helper()
	dev := NewDevice(line, DeviceOpts{Name: "d1", Unit: 1, Timeout: 300 * time.Millisecond, Retries: 0, ProbeEvery: 1})
	src := dev.Source([]Spec{reg(0, Int16), reg(1, Uint16)})
	good := func(what string) {
		t.Helper()
		out := readOnce(src, 2)
		if out[0].Quality != edge.Good || out[0].Value != edge.Num(-1234) || out[1].Value != edge.Num(54320) {
			t.Fatalf("%s: %s %v %v", what, out[0].Quality, out[0].Value, out[0].Err)
		}
	}
	good("clean line")
	d.mode.Store(corruptNext)
	out := readOnce(src, 2)
	if out[0].Quality != edge.CommFault {
		t.Fatalf("CRC error: quality %s", out[0].Quality)
	}
	mustContain(t, out[0].Err, `unit 1`, "read holding 0+2", "crc")
	t.Logf("corrupt answer: %v", out[0].Err)
	time.Sleep(50 * time.Millisecond)
	good("poll after a CRC error")
	d.mode.Store(garbageNext)
	good("garbage and a heartbeat before the answer")
	good("poll after garbage")
	// A late answer (after the timeout) with one retry: the poll stays good
	// and the next poll is not confused by the extra answer.
	late := NewDevice(line, DeviceOpts{Name: "d1", Unit: 1, Timeout: 300 * time.Millisecond, Retries: 1, ProbeEvery: 1}).Source([]Spec{reg(0, Int16), reg(1, Uint16)})
	d.delayNext(450 * time.Millisecond)
	for i := range 3 {
		out := readOnce(late, 2)
		if out[0].Quality != edge.Good || out[0].Value != edge.Num(-1234) || out[1].Value != edge.Num(54320) {
			t.Fatalf("late answer, poll %d: %s %v %v", i, out[0].Quality, out[0].Value, out[0].Err)
		}
	}
	if n := late.dev.Requests(); n != 4 {
		t.Fatalf("%d requests for 3 polls, want 4: the late answer should have cost exactly one retry", n)
	}
	// As TestRTULateAnswerIsNotTakenForTheNextBlock on a serial line: the
	// retry's own answer, arriving after the late one, must not be taken
	// for the next block's (same unit, same length, other registers).
	blocks := NewDevice(line, DeviceOpts{Name: "d1", Unit: 1, Timeout: 400 * time.Millisecond, Retries: 1, ProbeEvery: 1}).Source([]Spec{reg(1, Uint16), reg(25, Int16)})
	check := func(what string) {
		t.Helper()
		out := readOnce(blocks, 2)
		for i, want := range []edge.Value{edge.Num(54320), edge.Num(-1234)} {
			if out[i].Quality != edge.Good || out[i].Value != want {
				t.Fatalf("%s: point %d: %s %v (want %v) %v", what, i, out[i].Quality, out[i].Value, want, out[i].Err)
			}
		}
	}
	check("two blocks, clean")
	d.delayNext(600*time.Millisecond, 150*time.Millisecond)
	check("two blocks, one late answer")
	check("two blocks, next poll")
}

// TestRTUOverTCPPymodbus: modbus-rtu-tcp, the collector dials a serial
// server that bridges to a pymodbus RTU slave: every type decodes, line
// faults are handled like on a serial line, and a lost connection is
// reopened.
func TestRTUOverTCPPymodbus(t *testing.T) {
	d, m := newDTUStandIn(t, "1,2")
	addr := d.serve(t)
	line, err := NewRTUOverTCPLine(LineOpts{Name: "dtu-tcp", Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer line.Close()
	if s := line.String(); s != "modbus-rtu dtu-tcp (tcp://"+addr+")" {
		t.Errorf("line named %q", s)
	}
	checkAll(t, line, m, 1, 2)
	faultCases(t, d, line)
	// The serial server drops the connection: the next request reconnects.
	d.hangUp()
	src := NewDevice(line, DeviceOpts{Name: "d2", Unit: 2, Timeout: time.Second, Retries: 1}).Source([]Spec{reg(0, Int16)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := readOnce(src, 1)
		if out[0].Quality == edge.Good && out[0].Value == edge.Num(-2468) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect to the serial server: %s %v", out[0].Quality, out[0].Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := d.count.Load(); n < 2 {
		t.Fatalf("%d connections to the serial server, want a second one after the hang-up", n)
	}
}

// TestRTUOverTCPRefused: no serial server listening gives comm_fault that
// names it, within the connect timeout.
func TestRTUOverTCPRefused(t *testing.T) {
	addr := "127.0.0.1:" + itoa(testpeer.FreePort(t))
	line, _ := NewRTUOverTCPLine(LineOpts{Name: "dtu-tcp", Address: addr, ConnectTimeout: 500 * time.Millisecond})
	defer line.Close()
	out := readOnce(NewDevice(line, DeviceOpts{Name: "d", Unit: 1, Timeout: 300 * time.Millisecond}).Source([]Spec{reg(0, Int16)}), 1)
	if out[0].Quality != edge.CommFault {
		t.Fatalf("quality %s", out[0].Quality)
	}
	mustContain(t, out[0].Err, `bus "dtu-tcp" unit 1`, "serial server "+addr, "connect")
}

func startListener(t *testing.T, l *DTUListener) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	a, err := l.Addr(actx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return a.String(), func() { cancel(); <-done }
}

func waitConnected(t *testing.T, l *DTUListener, bus string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range l.States() {
			if s.Bus == bus && s.Connected {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("DTU of bus %q never connected: %+v", bus, l.States())
}

// TestDTUListenerPymodbus: two DTUs dial one listener, one identified by a
// text registration (regex), one by hex bytes; each line reaches its own
// pymodbus slave. A stranger with a wrong registration is turned away;
// garbled and late answers are handled like on a serial line; a DTU that
// drops its connection and dials again is picked up.
func TestDTUListenerPymodbus(t *testing.T) {
	dA, mA := newDTUStandIn(t, "1")
	dB, mB := newDTUStandIn(t, "2")
	o := DefaultDTUListenerOpts("127.0.0.1:0")
	o.RegisterTimeout = 2 * time.Second
	l, err := NewDTUListener(o)
	if err != nil {
		t.Fatal(err)
	}
	lineA, err := l.Line(LineOpts{Name: "dtu-a"}, DTUMatch{Pattern: regexp.MustCompile(`^DTU-A\d{3}`)})
	if err != nil {
		t.Fatal(err)
	}
	regB := []byte{0xAA, 0x55, 0x00, 0x02, 0x86, 0x91}
	lineB, err := l.Line(LineOpts{Name: "dtu-b"}, DTUMatch{Register: regB})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Line(LineOpts{Name: "dup"}, DTUMatch{Register: regB}); err == nil {
		t.Fatal("a second line with the same registration was accepted")
	}
	addr, stop := startListener(t, l)
	defer stop()
	defer lineA.Close()
	defer lineB.Close()

	// Before any DTU dials in: comm_fault at once, naming the DTU.
	start := time.Now()
	out := readOnce(NewDevice(lineA, DeviceOpts{Name: "d", Unit: 1, Timeout: time.Second}).Source([]Spec{reg(0, Int16)}), 1)
	if out[0].Quality != edge.CommFault || !errors.Is(out[0].Err, ErrNotConnected) || time.Since(start) > 200*time.Millisecond {
		t.Fatalf("no DTU yet: %s %v after %s", out[0].Quality, out[0].Err, time.Since(start))
	}
	mustContain(t, out[0].Err, `bus "dtu-a" unit 1`, "registering /^DTU-A")

	// A stranger is closed: its connection sees EOF.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("HELLO"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("stranger's connection: %v, want EOF (closed by the listener)", err)
	}
	c.Close()

	dA.dialIn(t, addr, []byte("DTU-A001\r\n"))
	dB.dialIn(t, addr, regB)
	waitConnected(t, l, "dtu-a", 1)
	waitConnected(t, l, "dtu-b", 1)
	checkAll(t, lineA, mA, 1)
	checkAll(t, lineB, mB, 2)
	faultCases(t, dA, lineA)

	// The DTU loses its link and dials in again.
	src := NewDevice(lineB, DeviceOpts{Name: "d2", Unit: 2, Timeout: time.Second, ProbeEvery: 1}).Source([]Spec{reg(0, Int16)})
	if out := readOnce(src, 1); out[0].Quality != edge.Good {
		t.Fatalf("before the hang-up: %v", out[0].Err)
	}
	dB.hangUp()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := readOnce(src, 1)
		if out[0].Quality == edge.CommFault {
			t.Logf("after the hang-up: %v", out[0].Err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hang-up not seen: %s %v", out[0].Quality, out[0].Err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	dB.dialIn(t, addr, regB)
	waitConnected(t, l, "dtu-b", 2)
	if out := readOnce(src, 1); out[0].Quality != edge.Good || out[0].Value != edge.Num(-2468) {
		t.Fatalf("after the DTU dialled in again: %s %v", out[0].Quality, out[0].Err)
	}
	// A reconnect while the old connection still looks alive replaces it.
	dB.dialIn(t, addr, regB)
	time.Sleep(100 * time.Millisecond)
	if out := readOnce(src, 1); out[0].Quality != edge.Good {
		// one poll may still hit the replaced connection; the next must be good
		if out = readOnce(src, 1); out[0].Quality != edge.Good {
			t.Fatalf("after a second dial-in: %s %v", out[0].Quality, out[0].Err)
		}
	}
}

// TestDTUBySourceAddress: a DTU that sends no registration is identified by
// the address it dials from.
func TestDTUBySourceAddress(t *testing.T) {
	d, m := newDTUStandIn(t, "1")
	l, _ := NewDTUListener(DefaultDTUListenerOpts("127.0.0.1:0"))
	line, err := l.Line(LineOpts{Name: "dtu-src"}, DTUMatch{Source: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := startListener(t, l)
	defer stop()
	defer line.Close()
	d.dialIn(t, addr, nil)
	waitConnected(t, l, "dtu-src", 1)
	checkAll(t, line, m, 1)
}

// TestDTUListenRetry: a listen address that is taken (a reload's old
// listener) is retried until it frees up.
func TestDTUListenRetry(t *testing.T) {
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := hold.Addr().String()
	o := DefaultDTUListenerOpts(addr)
	o.RetryListen = 50 * time.Millisecond
	l, _ := NewDTUListener(o)
	l.Line(LineOpts{Name: "x"}, DTUMatch{Source: "127.0.0.1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond)
	hold.Close()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	if a, err := l.Addr(actx); err != nil || a.String() != addr {
		t.Fatalf("listener did not take the freed address: %v %v", a, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestDTUListenerBoundsStrangers: connections that never register are
// closed after the registration timeout, and beyond MaxPending at once;
// the DTU that does register is still served.
func TestDTUListenerBoundsStrangers(t *testing.T) {
	o := DefaultDTUListenerOpts("127.0.0.1:0")
	o.RegisterTimeout, o.MaxPending = 500*time.Millisecond, 3
	l, _ := NewDTUListener(o)
	line, _ := l.Line(LineOpts{Name: "x"}, DTUMatch{Register: []byte("DTU9")})
	defer line.Close()
	addr, stop := startListener(t, l)
	defer stop()
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	start := time.Now()
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("stranger %d: %v, want EOF", i, err)
		}
		c.Close()
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("strangers held %s", d)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("DTU9"))
	waitConnected(t, l, "x", 1)
}
