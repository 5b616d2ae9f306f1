package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func readOnce(src *Source, n int) []edge.Raw {
	out := make([]edge.Raw, n)
	src.Read(context.Background(), out)
	return out
}

func mustContain(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q lacks %q", err, p)
		}
	}
}

// TestExceptionIsTypedAndNamed: a single point on an address the slave
// rejects gets quality exception, with the code and where it was read.
func TestPymodbusException(t *testing.T) {
	port := testpeer.FreePort(t)
	startPySlave(t, "--tcp", strconv.Itoa(port))
	line, _ := NewLine(LineOpts{Name: "plc", Address: fmt.Sprintf("127.0.0.1:%d", port)})
	defer line.Close()
	dev := NewDevice(line, DeviceOpts{Name: "d", Unit: 1, Timeout: time.Second})
	// 22-24 is a hole in the slave's map; 0 is a real register.
	src := dev.Source([]Spec{reg(0, Int16), reg(23, Uint16)})
	out := readOnce(src, 2)
	if out[0].Quality != edge.Good || out[0].Value != edge.Num(-1234) {
		t.Fatalf("point beside the hole: %+v", out[0])
	}
	if out[1].Quality != edge.Exception {
		t.Fatalf("hole: quality %s, want exception", out[1].Quality)
	}
	if code, ok := Exception(out[1].Err); !ok || code != 2 {
		t.Fatalf("want a typed exception 2, got %v", out[1].Err)
	}
	mustContain(t, out[1].Err, `bus "plc" unit 1`, "read holding 23+1", "illegal data address")
}

// TestSlaveKilledMidPoll: a slave that dies gives comm_fault naming the
// device, then stale while it is probed every few polls, and good values
// again once it answers.
func TestSlaveKilledMidPoll(t *testing.T) {
	port := testpeer.FreePort(t)
	slave, _ := startPySlave(t, "--tcp", strconv.Itoa(port))
	line, _ := NewLine(LineOpts{Name: "plc", Address: fmt.Sprintf("127.0.0.1:%d", port), ConnectTimeout: 300 * time.Millisecond})
	defer line.Close()
	dev := NewDevice(line, DeviceOpts{Name: "d", Unit: 1, Timeout: 300 * time.Millisecond, Retries: 1, ProbeEvery: 3})
	src := dev.Source([]Spec{reg(0, Int16), {Table: InputRegisters, Address: 5, Type: Uint16, Bit: -1}})
	if out := readOnce(src, 2); out[0].Quality != edge.Good || out[1].Quality != edge.Good {
		t.Fatalf("before the kill: %+v", out)
	}
	slave.Kill()
	start := time.Now()
	out := readOnce(src, 2)
	took := time.Since(start)
	for _, r := range out {
		if r.Quality != edge.CommFault {
			t.Fatalf("after the kill: quality %s, want comm_fault (%v)", r.Quality, r.Err)
		}
	}
	mustContain(t, out[0].Err, `bus "plc" unit 1`, "read holding 0+1", "2 attempts")
	if took > 2*time.Second {
		t.Fatalf("a dead slave cost %s; at most (retries+1) x timeout plus connects", took)
	}
	for i := range 2 {
		start := time.Now()
		out = readOnce(src, 2)
		if out[0].Quality != edge.Stale || !errors.Is(out[0].Err, ErrBackingOff) {
			t.Fatalf("poll %d while backing off: %s %v", i, out[0].Quality, out[0].Err)
		}
		if d := time.Since(start); d > 10*time.Millisecond {
			t.Fatalf("a skipped dead slave cost %s", d)
		}
	}
	// Bring the slave back on the same port; the next probe finds it.
	startPySlave(t, "--tcp", strconv.Itoa(port))
	if out = readOnce(src, 2); out[0].Quality != edge.Good {
		t.Fatalf("probe after the slave came back: %s %v", out[0].Quality, out[0].Err)
	}
}

// TestTCPPeerResets: a peer that resets connections gives comm_fault; once
// it behaves, the line reconnects by itself.
func TestTCPPeerResets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reset atomic.Bool
	reset.Store(true)
	var wg sync.WaitGroup
	defer func() { l.Close(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 260)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if reset.Load() {
						c.(*net.TCPConn).SetLinger(0) // close with RST
						return
					}
					// answer FC3 for 1 register with 0x0102
					if n >= 12 {
						resp := []byte{buf[0], buf[1], 0, 0, 0, 5, buf[6], 3, 2, 1, 2}
						c.Write(resp)
					}
				}
			}(c)
		}
	}()
	line, _ := NewLine(LineOpts{Name: "rst", Address: l.Addr().String()})
	defer line.Close()
	dev := NewDevice(line, DeviceOpts{Name: "d", Unit: 7, Timeout: 500 * time.Millisecond, ProbeEvery: 1})
	src := dev.Source([]Spec{reg(0, Uint16)})
	out := readOnce(src, 1)
	if out[0].Quality != edge.CommFault {
		t.Fatalf("reset peer: %s %v", out[0].Quality, out[0].Err)
	}
	mustContain(t, out[0].Err, `bus "rst" unit 7`, "read holding 0+1")
	t.Logf("reset: %v", out[0].Err)
	reset.Store(false)
	if out = readOnce(src, 1); out[0].Quality != edge.Good || out[0].Value != edge.Num(0x0102) {
		t.Fatalf("after the peer behaves: %s %v %v", out[0].Quality, out[0].Value, out[0].Err)
	}
}

// relay joins two pty pairs (slave side and collector side) and can spoil
// the slave's answers on the way, like a noisy RS-485 line.
type relay struct {
	slaveEnd, masterEnd *os.File
	mode                atomic.Int32 // 0 pass, 1 flip a byte of the next answer, 2 garbage before the next answer
	wg                  sync.WaitGroup

	delays testpeer.Delays // holds the next answers back this long each, in turn
}

// delayNext holds the next answers back, one delay per answer.
func (r *relay) delayNext(d ...time.Duration) { r.delays.Add(d...) }

const (
	passThrough int32 = iota
	corruptNext
	garbageNext
)

func newRelay(t *testing.T) (r *relay, slaveTTY, masterTTY string) {
	a1, a2 := testpeer.PtyPair(t) // pymodbus on a1
	b1, b2 := testpeer.PtyPair(t) // collector on b2
	fa, err := os.OpenFile(a2, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.OpenFile(b1, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	r = &relay{slaveEnd: fa, masterEnd: fb}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); io.Copy(fa, fb) }() // requests pass untouched
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 512)
		for {
			n, err := fa.Read(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			if d := r.delays.Next(); d > 0 {
				time.Sleep(d)
			}
			switch r.mode.Swap(passThrough) {
			case corruptNext:
				b[len(b)-1] ^= 0x5A
			case garbageNext:
				fb.Write([]byte{0x01, 0x03, 0xFF, 0x00, 0x13, 0x37})
				time.Sleep(5 * time.Millisecond)
			}
			fb.Write(b)
		}
	}()
	t.Cleanup(func() { fa.Close(); fb.Close(); r.wg.Wait() })
	return r, a1, b2
}

// TestRTUGarbledLine: a CRC error and garbage on the line give comm_fault
// for that poll only; the next poll reads good values (the transport purges
// what is left on the line). Timeouts are generous: a CRC error and noise
// are detected on the bytes, not by waiting, so a loaded machine (a slow
// pymodbus) changes nothing but the wall time.
func TestRTUGarbledLine(t *testing.T) {
	r, slaveTTY, masterTTY := newRelay(t)
	startPySlave(t, "--rtu", slaveTTY, "--units", "1,2", "--baud", "19200")
	line, err := NewLine(LineOpts{Name: "rs485-1", Device: masterTTY, Baud: 19200})
	if err != nil {
		t.Fatal(err)
	}
	defer line.Close()
	dev := NewDevice(line, DeviceOpts{Name: "d1", Unit: 1, Timeout: 3 * time.Second, Retries: 0, ProbeEvery: 1})
	src := dev.Source([]Spec{reg(0, Int16), reg(1, Uint16)})
	var out []edge.Raw
	testpeer.Eventually(t, 30*time.Second, "a good read on the clean line", func() bool {
		out = readOnce(src, 2)
		return out[0].Quality == edge.Good
	})
	for _, c := range []struct {
		mode int32
		want string
	}{{corruptNext, "crc"}, {garbageNext, ""}} {
		r.mode.Store(c.mode)
		out := readOnce(src, 2)
		if c.mode == corruptNext {
			if out[0].Quality != edge.CommFault {
				t.Fatalf("CRC error: quality %s", out[0].Quality)
			}
			mustContain(t, out[0].Err, `bus "rs485-1" unit 1`, "read holding 0+2", c.want)
			t.Logf("corrupt answer: %v", out[0].Err)
		} else {
			// Noise before the answer is skipped within the same poll.
			if out[0].Quality != edge.Good || out[0].Value != edge.Num(-1234) {
				t.Fatalf("garbage before the answer: %s %v", out[0].Quality, out[0].Err)
			}
		}
		if out = readOnce(src, 2); out[0].Quality != edge.Good || out[0].Value != edge.Num(-1234) || out[1].Value != edge.Num(54320) {
			t.Fatalf("poll after a garbled one: %s %v %v", out[0].Quality, out[0].Value, out[0].Err)
		}
	}
}

// TestRTUDeadSlaveCostsItsTimeoutOnce: on a shared line a unit that does
// not answer costs (retries+1) x timeout once, then only every ProbeEvery
// polls, one attempt each; in between it sends nothing, so the live unit's
// polls are not delayed. The proof counts requests on the wire (the
// device's own counter), not wall time, and bounds durations only from
// below (a timeout cannot end early), so a loaded machine cannot fail it.
func TestRTUDeadSlaveCostsItsTimeoutOnce(t *testing.T) {
	a, b := testpeer.PtyPair(t)
	startPySlave(t, "--rtu", a, "--units", "1", "--baud", "19200")
	line, _ := NewLine(LineOpts{Name: "rs485-1", Device: b, Baud: 19200})
	defer line.Close()
	const timeout, probeEvery = 200 * time.Millisecond, 5
	liveDev := NewDevice(line, DeviceOpts{Name: "live", Unit: 1, Timeout: 3 * time.Second})
	live := liveDev.Source([]Spec{reg(0, Int16)})
	deadDev := NewDevice(line, DeviceOpts{Name: "dead", Unit: 9, Timeout: timeout, Retries: 1, ProbeEvery: probeEvery})
	dead := deadDev.Source([]Spec{reg(0, Int16)})
	testpeer.Eventually(t, 30*time.Second, "the live unit answers", func() bool { return readOnce(live, 1)[0].Quality == edge.Good })
	var sent []uint64
	var costs []time.Duration
	for range 2*probeEvery + 1 {
		before := deadDev.Requests()
		start := time.Now()
		d := readOnce(dead, 1)
		costs = append(costs, time.Since(start))
		sent = append(sent, deadDev.Requests()-before)
		if l := readOnce(live, 1); l[0].Quality != edge.Good {
			t.Fatalf("live unit: %v", l[0].Err)
		}
		if d[0].Quality == edge.Good {
			t.Fatal("unit 9 answered")
		}
	}
	t.Logf("requests to the dead unit per cycle: %v; its read times: %v", sent, costs)
	if sent[0] != 2 || costs[0] < 2*timeout {
		t.Fatalf("first cycle: %d requests in %s, want (1+1) attempts of %s each", sent[0], costs[0], timeout)
	}
	var probes []int
	for i, n := range sent[1:] {
		switch n {
		case 0: // skipped: nothing on the wire
		case 1:
			probes = append(probes, i+1)
			if costs[i+1] < timeout {
				t.Errorf("probe in cycle %d took %s, less than its timeout", i+1, costs[i+1])
			}
		default:
			t.Fatalf("cycle %d sent %d requests to the dead unit: a probe is one attempt", i+1, n)
		}
	}
	if len(probes) != 2 || probes[1]-probes[0] != probeEvery || probes[0] > probeEvery {
		t.Fatalf("probes in cycles %v, want one every %d polls", probes, probeEvery)
	}
}
