package modbus

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	smodbus "github.com/simonvetter/modbus"

	"github.com/hazwatch/edgecollector/edge"
)

// benchSlave is a fast in-process slave: 4 unit ids, holding registers 0-999
// except a hole at 200-201 that answers illegal data address.
type benchSlave struct{ requests atomic.Int64 }

func (s *benchSlave) HandleCoils(*smodbus.CoilsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (s *benchSlave) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (s *benchSlave) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (s *benchSlave) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	s.requests.Add(1)
	end := int(req.Addr) + int(req.Quantity)
	if end > 1000 || (int(req.Addr) < 202 && end > 200) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	out := make([]uint16, req.Quantity)
	for i := range out {
		out[i] = uint16(int(req.Addr) + i)
	}
	return out, nil
}

func startBenchSlave(b *testing.B) (string, *benchSlave) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	h := &benchSlave{}
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + addr, MaxClients: 8, Timeout: time.Minute}, h)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Stop() })
	return addr, h
}

// benchMap is 250 points per unit: mixed widths (uint16, int16, float32,
// uint32, int64), gaps of unused registers, and one point on the hole at
// 200 that the slave rejects.
func benchMap() []Spec {
	var specs []Spec
	addr := 0
	types := []Type{Uint16, Int16, Float32, Uint32, Uint16, Int64}
	for i := 0; len(specs) < 249; i++ {
		t := types[i%len(types)]
		if addr >= 198 && addr < 202 {
			addr = 202
		}
		specs = append(specs, Spec{Table: HoldingRegisters, Address: uint16(addr), Type: t, Bit: -1})
		addr += t.Registers(0)
		if i%10 == 9 {
			addr += 3 // a gap
		}
	}
	specs = append(specs, Spec{Table: HoldingRegisters, Address: 200, Type: Uint16, Bit: -1}) // the hole
	return specs
}

// BenchmarkPoll1000Points polls 1,000 points on 4 unit ids over loopback
// TCP, with block reads and with one request per point, in the same run.
// Metrics: requests per cycle, points/s, CPU time per 1,000 points polled
// (this process: collector side and the in-process slave together) and
// peak RSS.
func BenchmarkPoll1000Points(b *testing.B) {
	for _, mode := range []struct {
		name string
		lim  Limits
	}{{"block", Limits{MaxGap: 10}}, {"per-point", Limits{MaxRegisters: 1, MaxGap: 0}}} {
		b.Run(mode.name, func(b *testing.B) {
			addr, slave := startBenchSlave(b)
			line, _ := NewLine(LineOpts{Name: "bench", Address: addr})
			defer line.Close()
			var srcs []*Source
			specs := benchMap()
			if mode.name == "per-point" {
				// one request per point: every point its own block
				lim := mode.lim
				lim.MaxRegisters = 1
				for u := 1; u <= 4; u++ {
					d := NewDevice(line, DeviceOpts{Name: fmt.Sprint(u), Unit: byte(u), Timeout: time.Second, Limits: lim})
					s := d.Source(specs)
					s.plan.Blocks = nil
					for i := range specs {
						s.plan.Blocks = append(s.plan.Blocks, s.plan.group([]int{i}, 0)...)
					}
					srcs = append(srcs, s)
				}
			} else {
				for u := 1; u <= 4; u++ {
					srcs = append(srcs, NewDevice(line, DeviceOpts{Name: fmt.Sprint(u), Unit: byte(u), Timeout: time.Second, Limits: mode.lim}).Source(specs))
				}
			}
			out := make([]edge.Raw, len(specs))
			for _, s := range srcs { // warm up: learn the hole
				s.Read(context.Background(), out)
			}
			slave.requests.Store(0)
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			start := time.Now()
			b.ResetTimer()
			for range b.N {
				for _, s := range srcs {
					s.Read(context.Background(), out)
				}
			}
			b.StopTimer()
			el := time.Since(start)
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			points := float64(b.N * 4 * len(specs))
			b.ReportMetric(float64(slave.requests.Load())/float64(b.N), "requests/cycle")
			b.ReportMetric(points/el.Seconds(), "points/s")
			b.ReportMetric(float64(cpu.Microseconds())/(points/1000), "cpu-µs/1000pts")
			b.ReportMetric(float64(ru1.Maxrss)/1024, "peak-RSS-MB")
			if bad := out[len(out)-1]; bad.Quality != edge.Exception {
				b.Fatalf("the point on the hole: %s", bad.Quality)
			}
			if out[0].Quality != edge.Good {
				b.Fatalf("first point: %v", out[0].Err)
			}
		})
	}
}
