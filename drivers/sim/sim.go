// Package sim simulates the demo's small tank farm: two storage tanks with
// level, temperature and pressure transmitters, two combustible-gas
// detectors (%LEL), one H2S detector (ppm) and two inlet shut-off valves,
// served as real Modbus TCP slaves on loopback (github.com/simonvetter/modbus),
// so any Modbus master (mbpoll included) can read them.
//
// Within the first minute it plays a gas leak at tank T-101: the dike
// detectors rise through H to HH, which trips the demo's interlock; once the
// interlock closes T-101's inlet valve the gas disperses. Every value moves
// in steps held at least 5 s. The register map is in docs/demo.md.
//
// The simulator only answers requests; it never acts on the collector.
package sim

import (
	"fmt"
	"math"
	"sync"
	"time"

	smodbus "github.com/simonvetter/modbus"
)

// Unit ids and addresses (docs/demo.md).
const (
	UnitTank101 = 1
	UnitTank102 = 2
	UnitValves  = 10

	UnitGas101 = 1
	UnitGas102 = 2
	UnitH2S103 = 3
)

// LeakAt is when the scripted leak starts, after Start.
const LeakAt = 20 * time.Second

// Opts configure the farm.
type Opts struct {
	PLCAddr string // host:port of the tank PLC slave (units 1, 2, 10)
	GasAddr string // host:port of the gas controller slave (units 1, 2, 3)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Farm is the simulated plant.
type Farm struct {
	o      Opts
	mu     sync.Mutex
	start  time.Time
	valve  [2]bool      // true = open (energised); de-energise to trip
	closed [2]time.Time // when each valve closed
	plc    *smodbus.ModbusServer
	gas    *smodbus.ModbusServer
}

// New returns a farm with both valves open.
func New(o Opts) *Farm {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Farm{o: o, valve: [2]bool{true, true}}
}

func (f *Farm) String() string {
	return fmt.Sprintf("simulated tank farm (PLC %s, gas controller %s)", f.o.PLCAddr, f.o.GasAddr)
}

// Start serves both slaves; the script's clock starts now.
func (f *Farm) Start() error {
	f.mu.Lock()
	f.start = f.o.Now()
	f.mu.Unlock()
	var err error
	if f.plc, err = smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + f.o.PLCAddr, MaxClients: 16, Timeout: time.Hour}, &plc{f}); err != nil {
		return fmt.Errorf("sim: PLC slave: %w", err)
	}
	if err = f.plc.Start(); err != nil {
		return fmt.Errorf("sim: PLC slave on %s: %w", f.o.PLCAddr, err)
	}
	if f.gas, err = smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + f.o.GasAddr, MaxClients: 16, Timeout: time.Hour}, &gasController{f}); err != nil {
		f.plc.Stop()
		return fmt.Errorf("sim: gas controller slave: %w", err)
	}
	if err = f.gas.Start(); err != nil {
		f.plc.Stop()
		return fmt.Errorf("sim: gas controller slave on %s: %w", f.o.GasAddr, err)
	}
	return nil
}

// Stop stops both slaves.
func (f *Farm) Stop() {
	if f.plc != nil {
		f.plc.Stop()
	}
	if f.gas != nil {
		f.gas.Stop()
	}
}

// Valve reports whether inlet valve i (0: T-101, 1: T-102) is open.
func (f *Farm) Valve(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.valve[i]
}

// Values is the state of every instrument at one moment.
type Values struct {
	Level       [2]float64 // m
	Temperature [2]float64 // °C
	Pressure    [2]float64 // kPa
	Gas         [2]float64 // %LEL
	H2S         float64    // ppm
	Valve       [2]bool
}

// step picks the value of a staircase: vals[k] during [k*width, (k+1)*width).
func step(d time.Duration, width time.Duration, vals ...float64) float64 {
	if d < 0 {
		return vals[0]
	}
	k := int(d / width)
	if k >= len(vals) {
		return vals[len(vals)-1]
	}
	return vals[k]
}

// At returns the instruments' values now.
func (f *Farm) At() Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.o.Now()
	t := now.Sub(f.start)
	var v Values
	v.Valve = f.valve
	v.Temperature = [2]float64{23.5 + step(t, 30*time.Second, 0, 0.2, 0.4, 0.3), 24.1}
	v.Pressure = [2]float64{101.3, 101.6 + step(t, 20*time.Second, 0, 0.1, 0)}
	// T-101 fills in 0.05 m steps every 10 s while its inlet is open.
	fill := t
	if !f.valve[0] {
		fill = f.closed[0].Sub(f.start)
	}
	v.Level = [2]float64{12.5 + 0.05*math.Floor(fill.Seconds()/10), 8.2}
	leak := t - LeakAt
	switch {
	case f.valve[0]:
		// Leaking at T-101 until its inlet is shut: steps of 6 s.
		v.Gas[0] = step(leak, 6*time.Second, 2, 12, 30, 60)
		v.Gas[1] = step(leak, 6*time.Second, 2, 8, 27, 40)
		if leak < 0 {
			v.Gas = [2]float64{step(t, 10*time.Second, 2, 3), 2}
		}
	default:
		// Shut: the gas disperses in 6 s steps.
		after := now.Sub(f.closed[0])
		v.Gas[0] = step(after, 6*time.Second, 35, 18, 6, 3)
		v.Gas[1] = step(after, 6*time.Second, 20, 10, 4, 2)
	}
	v.H2S = step(t-40*time.Second, 12*time.Second, 0.5, 12, 1)
	return v
}

// rawGas is a 4-20 mA detector's counts: 4000 at 0 %LEL, 20000 at 100.
func rawGas(pct float64) uint16 { return uint16(math.Round(4000 + pct*160)) }

func floatRegs(x float64) []uint16 {
	b := math.Float32bits(float32(x))
	return []uint16{uint16(b >> 16), uint16(b)}
}

type plc struct{ f *Farm }

func (p *plc) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	if req.UnitId != UnitValves || int(req.Addr)+int(req.Quantity) > 2 {
		return nil, smodbus.ErrIllegalDataAddress
	}
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	if req.IsWrite {
		for i, on := range req.Args {
			k := int(req.Addr) + i
			if p.f.valve[k] && !on {
				p.f.closed[k] = p.f.o.Now()
			}
			p.f.valve[k] = on
		}
		return nil, nil
	}
	return append([]bool(nil), p.f.valve[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func (p *plc) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (p *plc) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		return nil, smodbus.ErrIllegalFunction
	}
	k := int(req.UnitId) - UnitTank101
	if k < 0 || k > 1 || int(req.Addr)+int(req.Quantity) > 4 {
		return nil, smodbus.ErrIllegalDataAddress
	}
	v := p.f.At()
	regs := append(floatRegs(v.Level[k]), uint16(int16(math.Round(v.Temperature[k]*10))), uint16(math.Round(v.Pressure[k]*10)))
	return regs[req.Addr : req.Addr+req.Quantity], nil
}

func (p *plc) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}

type gasController struct{ f *Farm }

func (g *gasController) HandleCoils(*smodbus.CoilsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (g *gasController) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (g *gasController) HandleHoldingRegisters(*smodbus.HoldingRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (g *gasController) HandleInputRegisters(req *smodbus.InputRegistersRequest) ([]uint16, error) {
	if req.Addr != 0 || req.Quantity != 1 {
		return nil, smodbus.ErrIllegalDataAddress
	}
	v := g.f.At()
	switch req.UnitId {
	case UnitGas101:
		return []uint16{rawGas(v.Gas[0])}, nil
	case UnitGas102:
		return []uint16{rawGas(v.Gas[1])}, nil
	case UnitH2S103:
		return []uint16{uint16(math.Round(v.H2S * 10))}, nil
	}
	return nil, smodbus.ErrIllegalDataAddress
}
