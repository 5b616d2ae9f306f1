package testpeer

import (
	"fmt"
	"sync"
	"testing"
	"time"

	smodbus "github.com/simonvetter/modbus"
)

// Delays is a queue of hold-back times, one taken per answer (none once
// they run out): a slow slave or a congested line in a test. It is safe for
// concurrent use.
type Delays struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add queues hold-backs for the next answers, one each.
func (q *Delays) Add(d ...time.Duration) {
	q.mu.Lock()
	q.d = append(q.d, d...)
	q.mu.Unlock()
}

// Next takes the next hold-back (0 when none is queued).
func (q *Delays) Next() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.d) == 0 {
		return 0
	}
	d := q.d[0]
	q.d = q.d[1:]
	return d
}

// movingSlave answers every holding-register read with values that change
// with time (register i holds base + i).
type movingSlave struct{ base func() uint16 }

func (movingSlave) HandleCoils(*smodbus.CoilsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (movingSlave) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (movingSlave) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (s movingSlave) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	out := make([]uint16, req.Quantity)
	v := s.base()
	for i := range out {
		out[i] = v + uint16(i)
	}
	return out, nil
}

// StartMovingSlave runs an in-process Modbus TCP slave (any unit id) whose
// holding registers change every tick (tick 0: every millisecond), for
// loads and kill tests; it is stopped at the test's end.
func StartMovingSlave(t testing.TB, maxClients uint, tick time.Duration) string {
	t.Helper()
	tick = max(tick, time.Millisecond)
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + addr, MaxClients: maxClients, Timeout: time.Minute},
		movingSlave{base: func() uint16 { return uint16(time.Now().UnixNano() / int64(tick)) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return addr
}
