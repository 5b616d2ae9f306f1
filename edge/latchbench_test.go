package edge_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	smodbus "github.com/simonvetter/modbus"

	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// benchPlant is an in-process Modbus TCP slave: unit 1 holds 100 gas
// registers, unit 2 the 100 valve coils, unit 3 ten registers of another
// poll group. It timestamps register changes and coil writes itself.
type benchPlant struct {
	mu     sync.Mutex
	gas    [100]uint16
	coils  [100]bool
	set    [100]time.Time
	writes chan int
	reads3 []time.Time // when unit 3 (the other group) was read
}

func (p *benchPlant) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	if req.UnitId != 2 || int(req.Addr)+int(req.Quantity) > 100 {
		return nil, smodbus.ErrIllegalDataAddress
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if req.IsWrite {
		for i, v := range req.Args {
			p.coils[int(req.Addr)+i] = v
		}
		if !req.Args[0] {
			select {
			case p.writes <- int(req.Addr):
			default:
			}
		}
		return nil, nil
	}
	return slices.Clone(p.coils[req.Addr : req.Addr+req.Quantity]), nil
}

func (p *benchPlant) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (p *benchPlant) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (p *benchPlant) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch req.UnitId {
	case 1:
		if int(req.Addr)+int(req.Quantity) > 100 {
			return nil, smodbus.ErrIllegalDataAddress
		}
		return slices.Clone(p.gas[req.Addr : req.Addr+req.Quantity]), nil
	case 3:
		p.reads3 = append(p.reads3, time.Now())
		return make([]uint16, req.Quantity), nil
	}
	return nil, smodbus.ErrIllegalDataAddress
}

func (p *benchPlant) setGas(i int, v uint16) {
	p.mu.Lock()
	p.gas[i], p.set[i] = v, time.Now()
	p.mu.Unlock()
}

// slowLatches is a latch store on a disk whose sync takes delay.
type slowLatches struct {
	delay time.Duration
	mu    sync.Mutex
	st    edge.LatchState
	saves int
}

func (s *slowLatches) Load() (edge.LatchState, error) { return edge.LatchState{}, nil }

func (s *slowLatches) Save(st edge.LatchState) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	s.st, s.saves = st, s.saves+1
	s.mu.Unlock()
	return nil
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkInterlockLatencySlowLatchStore: 100 gas points at 100 ms, one
// 1oo1 interlock per point (on-delay 0) writing its valve coil, a latch
// store whose save takes 200 ms (and, as the baseline of the same run, 0),
// and another poll group (10 registers at 100 ms on its own line). Each
// iteration raises one point to HH and times the coil write in the slave's
// handler. Reported: latency p50/p99 (target p99 <= poll + 30 ms) and the
// other group's tick period p99 and max.
//
//	go test ./edge -run XXX -bench LatchStore -benchtime 100x -count 3
func BenchmarkInterlockLatencySlowLatchStore(b *testing.B) {
	for _, d := range []time.Duration{0, 200 * time.Millisecond} {
		b.Run("save="+d.String(), func(b *testing.B) { benchLatchStore(b, d) })
	}
}

func benchLatchStore(b *testing.B, saveTakes time.Duration) {
	plant := &benchPlant{writes: make(chan int, 1)}
	for i := range plant.coils {
		plant.coils[i], plant.gas[i] = true, 50
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(b))
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + addr, MaxClients: 8, Timeout: time.Minute}, plant)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	gasLine, _ := modbus.NewLine(modbus.LineOpts{Name: "gas-line", Address: addr})
	otherLine, _ := modbus.NewLine(modbus.LineOpts{Name: "other-line", Address: addr})
	defer gasLine.Close()
	defer otherLine.Close()
	gas := modbus.NewDevice(gasLine, modbus.DeviceOpts{Name: "gas", Unit: 1, Retries: 1})
	valves := modbus.NewDevice(gasLine, modbus.DeviceOpts{Name: "valves", Unit: 2, Retries: 1})
	other := modbus.NewDevice(otherLine, modbus.DeviceOpts{Name: "other", Unit: 3})

	var pts []edge.PointConf
	var ils []edge.InterlockConf
	var gasSpecs, otherSpecs []modbus.Spec
	var gasIdx, otherIdx []int
	hh := 50.0
	for i := range 100 {
		code := fmt.Sprintf("GT-%03d", i)
		pts = append(pts, edge.PointConf{Code: code, Device: "gas", Unit: "%LEL", Scale: 0.1, Gas: true, Alarms: &edge.Limits{HH: &hh}})
		gasSpecs = append(gasSpecs, modbus.Spec{Table: modbus.HoldingRegisters, Address: uint16(i), Type: modbus.Uint16, Bit: -1})
		gasIdx = append(gasIdx, i)
		ils = append(ils, edge.InterlockConf{Name: "ESD-" + code, Need: 1, Latch: true, Inputs: []edge.InputConf{{Point: code, Level: edge.HH}},
			Actions: []edge.ActionConf{{Device: "valves", Writer: valves, Table: edge.OutputCoil, Address: uint16(i), Value: 0, Verify: true}}})
	}
	for i := range 10 {
		pts = append(pts, edge.PointConf{Code: fmt.Sprintf("PT-%d", i), Device: "other", Scale: 1})
		otherSpecs = append(otherSpecs, modbus.Spec{Table: modbus.HoldingRegisters, Address: uint16(i), Type: modbus.Uint16, Bit: -1})
		otherIdx = append(otherIdx, 100+i)
	}
	latches := &slowLatches{delay: saveTakes}
	q := edge.NewQueue(100000)
	e, err := edge.NewEngine(edge.EngineOpts{Points: pts, Interlocks: ils, Latches: latches, Emit: q.Put})
	if err != nil {
		b.Fatal(err)
	}
	groups := []*edge.Group{
		{Name: "gas-line@100ms", Interval: 100 * time.Millisecond, Engine: e, Queue: q, Sources: []edge.GroupSource{{Source: gas.Source(gasSpecs), Points: gasIdx}}},
		{Name: "other-line@100ms", Interval: 100 * time.Millisecond, Engine: e, Queue: q, Sources: []edge.GroupSource{{Source: other.Source(otherSpecs), Points: otherIdx}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, g := range append([]interface{ Run(context.Context) error }{e}, groups[0], groups[1]) {
		wg.Add(1)
		go func() { defer wg.Done(); g.Run(ctx) }()
	}
	wg.Add(1)
	go func() { // the appender's side of the queue
		defer wg.Done()
		for ctx.Err() == nil {
			select {
			case <-q.Ready():
				q.Take(1000)
			case <-ctx.Done():
			}
		}
	}()
	time.Sleep(time.Second)
	var lat []time.Duration
	plant.mu.Lock()
	plant.reads3 = nil
	plant.mu.Unlock()
	b.ResetTimer()
	for n := range b.N {
		i := n % 100
		plant.setGas(i, 600) // 60 %LEL
		select {
		case addr := <-plant.writes:
			plant.mu.Lock()
			lat = append(lat, time.Since(plant.set[addr]))
			plant.mu.Unlock()
		case <-time.After(10 * time.Second):
			b.Fatalf("interlock %d did not write its coil", i)
		}
		plant.setGas(i, 50)
		for deadline := time.Now().Add(5 * time.Second); e.Reset(ctx, "ESD-"+fmt.Sprintf("GT-%03d", i), "bench") != nil; {
			if time.Now().After(deadline) {
				b.Fatalf("interlock %d could not be reset", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	plant.mu.Lock()
	var periods []time.Duration
	for k := 1; k < len(plant.reads3); k++ {
		periods = append(periods, plant.reads3[k].Sub(plant.reads3[k-1]))
	}
	plant.mu.Unlock()
	latches.mu.Lock()
	saves := latches.saves
	latches.mu.Unlock()
	b.ReportMetric(float64(percentile(lat, 0.5))/1e6, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99))/1e6, "p99-ms")
	b.ReportMetric(float64(percentile(periods, 0.99))/1e6, "other-tick-p99-ms")
	b.ReportMetric(float64(slices.Max(periods))/1e6, "other-tick-max-ms")
	b.ReportMetric(float64(saves), "latch-saves")
	b.ReportMetric(0, "ns/op")
}
