package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gmodbus "github.com/grid-x/modbus"

	"github.com/hazwatch/edgecollector/edge"
)

// DeviceOpts configure one slave.
type DeviceOpts struct {
	Name    string
	Unit    byte
	Timeout time.Duration // per request, default 1s
	Retries int           // further attempts after a failed request
	// ProbeEvery: once the device stops answering, it is tried only every
	// N polls until it answers again (default 10).
	ProbeEvery int
	Limits     Limits
	Logger     *slog.Logger
}

// Device is one unit id on a line.
type Device struct {
	line *Line
	opts DeviceOpts
	log  *slog.Logger

	mu       sync.Mutex
	dead     bool
	skipped  int
	lastErr  error
	requests uint64
}

// NewDevice returns the device with this unit id on line.
func NewDevice(line *Line, opts DeviceOpts) *Device {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Device{line: line, opts: opts, log: opts.Logger.With("bus", line.Name(), "device", opts.Name, "unit", opts.Unit)}
}

func (d *Device) String() string {
	return fmt.Sprintf("device %q unit %d on bus %q", d.opts.Name, d.opts.Unit, d.line.Name())
}

// Requests is the number of requests sent to the device so far.
func (d *Device) Requests() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

// Error is a failed request, naming where it went.
type Error struct {
	Bus      string
	Unit     byte
	Op       string // "read holding", "write coil", ...
	Address  uint16
	Count    uint16
	Err      error
	Attempts int
}

func (e *Error) Error() string {
	s := fmt.Sprintf("bus %q unit %d: %s %d+%d: %v", e.Bus, e.Unit, e.Op, e.Address, e.Count, e.Err)
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (%d attempts)", e.Attempts)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ErrWrongFunction is an answer whose function code is neither the
// request's nor its exception (fc|0x80): a stray or foreign frame, not an
// exception of the slave.
var ErrWrongFunction = errors.New("answer has the wrong function code")

// answerError checks that an exception in err answers function code fc.
// grid-x reports any answer with another function code as an exception
// whose "code" is the answer's first data byte; only fc|0x80 is one.
func answerError(err error, fc byte) error {
	var me *gmodbus.Error
	if errors.As(err, &me) && me.FunctionCode != fc|0x80 {
		return fmt.Errorf("%w: 0x%02x to a request of 0x%02x", ErrWrongFunction, me.FunctionCode, fc)
	}
	return err
}

// Exception returns the Modbus exception code in err, if it is one.
func Exception(err error) (byte, bool) {
	var me *gmodbus.Error
	if errors.As(err, &me) {
		return me.ExceptionCode, true
	}
	return 0, false
}

// quality is the quality of points whose read failed with err. Gateway
// exceptions (10, 11) mean the slave behind a gateway did not answer.
func quality(err error) edge.Quality {
	if code, ok := Exception(err); ok && code != gmodbus.ExceptionCodeGatewayPathUnavailable && code != gmodbus.ExceptionCodeGatewayTargetDeviceFailedToRespond {
		return edge.Exception
	}
	return edge.CommFault
}

// ErrBackingOff marks points not read because the device stopped answering.
var ErrBackingOff = errors.New("not answering; backing off")

// Source binds a plan to the device: it is what a poll group reads. The
// plan holds the points' own specs first and their diagnostic registers
// after them, so both are read in the same blocks.
type Source struct {
	dev  *Device
	plan *Plan
	n    int     // the points' own specs: plan.Specs[:n]
	diag [][]int // diag[i]: plan indexes of point i's diagnostic words
	all  []edge.Raw
}

var _ edge.Source = (*Source)(nil)
var _ edge.Writer = (*Device)(nil)

// Source returns an edge.Source reading these points from the device.
func (d *Device) Source(specs []Spec) *Source {
	all := make([]Spec, len(specs), len(specs)+4)
	copy(all, specs)
	var diag [][]int
	for i := range specs {
		all[i].Diag = nil
		for _, ds := range specs[i].Diag {
			if diag == nil {
				diag = make([][]int, len(specs))
			}
			diag[i] = append(diag[i], len(all))
			all = append(all, ds)
		}
	}
	s := &Source{dev: d, plan: NewPlan(all, d.opts.Limits), n: len(specs), diag: diag}
	if diag != nil {
		s.all = make([]edge.Raw, len(all))
	}
	return s
}

func (s *Source) String() string { return s.dev.String() }

// Plan is the source's current request plan.
func (s *Source) Plan() *Plan { return s.plan }

// Read polls every block of the plan. A device that stops answering costs
// at most (retries+1) x timeout once; after that it is tried once every
// ProbeEvery polls and its points are stale in between.
func (s *Source) Read(ctx context.Context, out []edge.Raw) {
	if s.diag == nil {
		s.read(ctx, out)
		return
	}
	clear(s.all)
	s.read(ctx, s.all)
	copy(out, s.all[:s.n])
	for i, ks := range s.diag {
		for _, k := range ks {
			r := s.all[k]
			if r.Quality != edge.Good {
				out[i].DiagErr, out[i].DiagQuality = fmt.Errorf("diagnostic register %s: %w", s.plan.Specs[k], r.Err), r.Quality
				out[i].Diag = out[i].Diag[:0]
				break
			}
			w := uint16(r.Value.Float())
			out[i].Diag = append(out[i].Diag, w)
		}
	}
}

// read polls every block of the plan into out (one entry per plan spec).
func (s *Source) read(ctx context.Context, out []edge.Raw) {
	d := s.dev
	d.mu.Lock()
	dead := d.dead
	if dead {
		d.skipped++
		if d.skipped < d.opts.ProbeEvery {
			err := fmt.Errorf("%s: %w (last error: %v); next try in %d polls", d, ErrBackingOff, d.lastErr, d.opts.ProbeEvery-d.skipped)
			d.mu.Unlock()
			for i := range out {
				out[i] = edge.Raw{Quality: edge.Stale, Err: err}
			}
			return
		}
		d.skipped = 0
	}
	d.mu.Unlock()
	attempts := d.opts.Retries + 1
	if dead {
		attempts = 1 // a probe
	}
	for k := 0; k < len(s.plan.Blocks); k++ {
		b := s.plan.Blocks[k]
		data, err := d.read(ctx, false, b.Table, b.Start, b.Count, attempts)
		if code, ok := Exception(err); ok && code == gmodbus.ExceptionCodeIllegalDataAddress && s.plan.Split(k) {
			d.log.Warn("device rejected a block read; splitting it around the rejected address", "block", b.String(), "blocks_now", len(s.plan.Blocks))
			k--
			continue
		}
		if err != nil {
			q := quality(err)
			for _, i := range b.Points {
				out[i] = edge.Raw{Quality: q, Err: err}
			}
			if q == edge.CommFault && ctx.Err() == nil {
				d.markDead(err)
				for _, rest := range s.plan.Blocks[k+1:] {
					for _, i := range rest.Points {
						out[i] = edge.Raw{Quality: edge.CommFault, Err: fmt.Errorf("%s: not read: %w", d, err)}
					}
				}
				return
			}
			continue
		}
		for _, i := range b.Points {
			out[i] = decodePoint(b, s.plan.Specs[i], data)
		}
	}
	d.markAlive()
}

func decodePoint(b Block, sp Spec, data []byte) edge.Raw {
	off := b.Offset(sp)
	if b.Table.Bits() {
		v, err := Bit(data, off)
		if err != nil {
			return edge.Raw{Quality: edge.CommFault, Err: fmt.Errorf("%s: short answer: %w", sp, err)}
		}
		return edge.Raw{Value: edge.BoolValue(v)}
	}
	n := 2 * sp.Type.Registers(sp.Length)
	if off+n > len(data) {
		return edge.Raw{Quality: edge.CommFault, Err: fmt.Errorf("%s: short answer: %d bytes", sp, len(data))}
	}
	v, err := DecodeRegisters(sp, data[off:off+n])
	if err != nil {
		return edge.Raw{Quality: edge.SensorFault, Err: fmt.Errorf("%s: %w", sp, err)}
	}
	return edge.Raw{Value: v}
}

func (d *Device) markDead(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dead {
		d.log.Warn("device stopped answering; probing every few polls", "err", err, "probe_every", d.opts.ProbeEvery)
	}
	d.dead, d.skipped, d.lastErr = true, 0, err
}

func (d *Device) markAlive() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		d.log.Info("device answers again")
	}
	d.dead, d.lastErr = false, nil
}

// read sends one read request with retries on communication errors (an
// exception is an answer and is not retried).
func (d *Device) read(ctx context.Context, prio bool, t Table, addr, count uint16, attempts int) ([]byte, error) {
	var data []byte
	var err error
	n := 0
	for n < attempts {
		n++
		err = d.line.Do(ctx, prio, d.opts.Unit, d.opts.Timeout, func(ctx context.Context, c gmodbus.Client) error {
			d.mu.Lock()
			d.requests++
			d.mu.Unlock()
			var e error
			switch t {
			case Coils:
				data, e = c.ReadCoils(ctx, addr, count)
			case DiscreteInputs:
				data, e = c.ReadDiscreteInputs(ctx, addr, count)
			case HoldingRegisters:
				data, e = c.ReadHoldingRegisters(ctx, addr, count)
			case InputRegisters:
				data, e = c.ReadInputRegisters(ctx, addr, count)
			default:
				e = fmt.Errorf("table %s cannot be read", t)
			}
			return answerError(e, t.Function())
		})
		if err == nil {
			if want := expectedBytes(t, count); len(data) != want {
				err = fmt.Errorf("answer has %d data bytes, want %d", len(data), want)
				continue
			}
			return data, nil
		}
		if _, ok := Exception(err); ok || ctx.Err() != nil {
			break
		}
	}
	return nil, &Error{Bus: d.line.Name(), Unit: d.opts.Unit, Op: "read " + t.String(), Address: addr, Count: count, Err: err, Attempts: n}
}

func expectedBytes(t Table, count uint16) int {
	if t.Bits() {
		return (int(count) + 7) / 8
	}
	return 2 * int(count)
}

// WriteOutput writes one coil (FC 5) or holding register (FC 6) ahead of any
// waiting poll, retrying on communication errors.
func (d *Device) WriteOutput(ctx context.Context, table edge.OutputTable, addr uint16, value float64) error {
	return d.write(ctx, table, addr, []float64{value})
}

// WriteOutputs writes consecutive coils (FC 15) or registers (FC 16).
func (d *Device) WriteOutputs(ctx context.Context, table edge.OutputTable, addr uint16, values []float64) error {
	return d.write(ctx, table, addr, values)
}

func (d *Device) write(ctx context.Context, table edge.OutputTable, addr uint16, values []float64) error {
	op := "write " + table.String()
	var err error
	n := 0
	for n < d.opts.Retries+1 {
		n++
		err = d.line.Do(ctx, true, d.opts.Unit, d.opts.Timeout, func(ctx context.Context, c gmodbus.Client) error {
			return answerError(writeValues(ctx, c, table, addr, values), writeFunction(table, len(values)))
		})
		if err == nil {
			return nil
		}
		if _, ok := Exception(err); ok || ctx.Err() != nil {
			break
		}
	}
	return &Error{Bus: d.line.Name(), Unit: d.opts.Unit, Op: op, Address: addr, Count: uint16(len(values)), Err: err, Attempts: n}
}

// writeFunction is the function code writeValues uses.
func writeFunction(table edge.OutputTable, n int) byte {
	switch {
	case table == edge.OutputCoil && n == 1:
		return 5
	case table == edge.OutputCoil:
		return 15
	case n == 1:
		return 6
	}
	return 16
}

func writeValues(ctx context.Context, c gmodbus.Client, table edge.OutputTable, addr uint16, values []float64) error {
	if table == edge.OutputCoil {
		for _, v := range values {
			if v != 0 && v != 1 {
				return fmt.Errorf("a coil takes 0 or 1, not %g", v)
			}
		}
		if len(values) == 1 {
			var v uint16
			if values[0] == 1 {
				v = 0xFF00
			}
			_, err := c.WriteSingleCoil(ctx, addr, v)
			return err
		}
		b := make([]byte, (len(values)+7)/8)
		for i, v := range values {
			if v == 1 {
				b[i/8] |= 1 << (i % 8)
			}
		}
		_, err := c.WriteMultipleCoils(ctx, addr, uint16(len(values)), b)
		return err
	}
	regs := make([]byte, 2*len(values))
	for i, v := range values {
		r, err := EncodeRegister(v)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint16(regs[2*i:], r)
	}
	if len(values) == 1 {
		_, err := c.WriteSingleRegister(ctx, addr, binary.BigEndian.Uint16(regs))
		return err
	}
	_, err := c.WriteMultipleRegisters(ctx, addr, uint16(len(values)), regs)
	return err
}

// ReadOutput reads a coil or holding register back, ahead of waiting polls.
func (d *Device) ReadOutput(ctx context.Context, table edge.OutputTable, addr uint16) (float64, error) {
	t := Coils
	if table == edge.OutputHolding {
		t = HoldingRegisters
	}
	data, err := d.read(ctx, true, t, addr, 1, d.opts.Retries+1)
	if err != nil {
		return 0, err
	}
	if t == Coils {
		if data[0]&1 == 1 {
			return 1, nil
		}
		return 0, nil
	}
	return float64(binary.BigEndian.Uint16(data)), nil
}
