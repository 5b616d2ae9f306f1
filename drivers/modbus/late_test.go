package modbus

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// TestTCPLateAnswerIsSkipped: a healthy slave answers one request 1.5 s
// late (timeout 1 s). The retry must skip the stale frame and read its own
// answer: the poll stays good, nothing goes comm_fault or stale, and the
// next poll is good too (issue: one late answer tripped an ESD valve).
func TestTCPLateAnswerIsSkipped(t *testing.T) {
	port := testpeer.FreePort(t)
	startPySlave(t, "--tcp", strconv.Itoa(port))
	proxy := testpeer.StartDelayProxy(t, fmt.Sprintf("127.0.0.1:%d", port))
	proxy.Delay(1500 * time.Millisecond)
	line, _ := NewLine(LineOpts{Name: "plc", Address: proxy.Addr()})
	defer line.Close()
	dev := NewDevice(line, DeviceOpts{Name: "gas", Unit: 1, Timeout: time.Second, Retries: 1})
	src := dev.Source([]Spec{reg(0, Int16), reg(1, Uint16)})
	for poll := range 3 {
		out := readOnce(src, 2)
		if out[0].Quality != edge.Good || out[0].Value != edge.Num(-1234) || out[1].Value != edge.Num(54320) {
			t.Fatalf("poll %d: %s %v %v / %v", poll, out[0].Quality, out[0].Value, out[0].Err, out[1].Value)
		}
	}
}

// TestRTULateAnswerIsNotTakenForTheNextBlock: RTU frames carry no
// transaction id. A slave answers one request late (after the timeout):
// the retry reads that late answer (it answers the same request), and the
// retry's own answer, arriving after it, must not be taken for the answer
// to the next block (same unit, same length, other registers).
func TestRTULateAnswerIsNotTakenForTheNextBlock(t *testing.T) {
	r, slaveTTY, masterTTY := newRelay(t)
	startPySlave(t, "--rtu", slaveTTY, "--units", "1", "--baud", "19200")
	line, err := NewLine(LineOpts{Name: "rs485-1", Device: masterTTY, Baud: 19200})
	if err != nil {
		t.Fatal(err)
	}
	defer line.Close()
	dev := NewDevice(line, DeviceOpts{Name: "gas", Unit: 1, Timeout: 400 * time.Millisecond, Retries: 1, ProbeEvery: 1})
	// Two blocks of one register each: 54320 at 1, -1234 at 25.
	src := dev.Source([]Spec{reg(1, Uint16), reg(25, Int16)})
	check := func(what string) {
		t.Helper()
		out := readOnce(src, 2)
		for i, want := range []edge.Value{edge.Num(54320), edge.Num(-1234)} {
			if out[i].Quality != edge.Good || out[i].Value != want {
				t.Fatalf("%s: point %d: %s %v (want %v) %v", what, i, out[i].Quality, out[i].Value, want, out[i].Err)
			}
		}
	}
	check("clean line")
	// The first answer comes 200 ms after the timeout; the retry's answer
	// follows it 150 ms later, while the collector moves to the next block.
	r.delayNext(600*time.Millisecond, 150*time.Millisecond)
	check("poll with one late answer")
	check("next poll")
}

// TestWrongFunctionCodeIsCommFault: an answer with another function code
// that is not the request's exception (fc|0x80) is a stray frame, not an
// exception: comm_fault, and the block plan is never split for it.
func TestWrongFunctionCodeIsCommFault(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { l.Close(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 12)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			// FC 4 with byte count 2 to an FC 3 request: grid-x alone
			// would report "exception 2, illegal data address".
			c.Write([]byte{req[0], req[1], 0, 0, 0, 5, req[6], 4, 2, 0, 7})
		}
	}()
	line, _ := NewLine(LineOpts{Name: "plc", Address: l.Addr().String()})
	defer line.Close()
	dev := NewDevice(line, DeviceOpts{Name: "d", Unit: 1, Timeout: 500 * time.Millisecond, Retries: 1})
	src := dev.Source([]Spec{reg(0, Uint16), reg(1, Uint16)})
	out := readOnce(src, 2)
	if out[0].Quality != edge.CommFault || out[1].Quality != edge.CommFault {
		t.Fatalf("wrong function code: %s / %s, want comm_fault: %v", out[0].Quality, out[1].Quality, out[0].Err)
	}
	mustContain(t, out[0].Err, `bus "plc" unit 1`, "read holding 0+2", "wrong function code", "0x04", "0x03")
	if n := len(src.Plan().Blocks); n != 1 {
		t.Fatalf("the plan was split into %d blocks for a stray frame", n)
	}
}
