package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
)

// ProbeOpts select what Probe reads.
type ProbeOpts struct {
	Device string   // device name from the config
	Points []string // point codes (default: all points of the device)
	// Table, when set, makes a raw read of Count values from Address,
	// decoded as Type in word order Order (default: the device's).
	Table   string
	Address int
	Count   int
	Type    string
	Order   string
}

// ErrUsage marks a probe that could not start: a bad device, point or
// register argument.
var ErrUsage = errors.New("bad probe arguments")

// ErrReadFailed marks a probe in which some read failed (each one is
// printed with its error).
var ErrReadFailed = errors.New("some reads failed")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// Probe is the commissioning probe: it reads a device's configured points
// (converted, with quality) or raw registers, like mbpoll but through the
// collector's own config, drivers and conversion, and prints them to w.
func Probe(ctx context.Context, cfg *config.Config, o ProbeOpts, w io.Writer) error {
	dv := cfg.Device(o.Device)
	if dv == nil {
		return usageErr("no device %q in %s", o.Device, cfg.File)
	}
	b := cfg.Bus(dv.Bus)
	if b.Type == config.BusI2C {
		return usageErr("device %q is on I2C bus %q: the probe reads Modbus devices", dv.Name, b.Name)
	}
	line, err := newModbusLine(b, lineOpts(b), nil, nil)
	if err != nil {
		return err
	}
	defer line.Close()
	device := modbus.NewDevice(line, deviceOpts(dv))
	if o.Table != "" {
		return readRaw(ctx, w, device, dv, o)
	}
	want := map[string]bool{}
	for _, p := range o.Points {
		if p != "" {
			want[p] = true
		}
	}
	var specs []modbus.Spec
	var pts []*config.Point
	for i := range cfg.Points {
		p := &cfg.Points[i]
		if p.Device == dv.Name && (len(want) == 0 || want[p.Code]) {
			sp, err := modbusSpec(p, dv)
			if err != nil {
				return usageErr("%v", err)
			}
			specs, pts = append(specs, sp), append(pts, p)
		}
	}
	if len(specs) == 0 {
		return usageErr("device %q has no such points", dv.Name)
	}
	src := device.Source(specs)
	raw := make([]edge.Raw, len(specs))
	src.Read(ctx, raw)
	var failed error
	for i, p := range pts {
		pc := pointConf(p, dv)
		v, q := pc.Convert(&raw[i], false)
		fmt.Fprintf(w, "%-16s %-24s %-14s %-12s raw=%s", p.Code, specs[i].String(), v.String()+" "+p.Unit, q, raw[i].Value)
		if raw[i].Err != nil {
			fmt.Fprintf(w, "  error: %v", raw[i].Err)
			failed = ErrReadFailed
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d points in %d requests\n", len(specs), len(src.Plan().Blocks))
	return failed
}

func readRaw(ctx context.Context, w io.Writer, device *modbus.Device, dv *config.Device, o ProbeOpts) error {
	t, err := modbus.ParseTable(o.Table)
	if err != nil {
		return usageErr("%v", err)
	}
	if o.Type == "" {
		o.Type = "uint16"
	}
	ty, err := modbus.ParseType(o.Type)
	if err != nil || (t.Bits() && ty != modbus.Bool) {
		ty = modbus.Bool
		if !t.Bits() {
			return usageErr("--type: %v", err)
		}
	}
	if o.Order == "" {
		o.Order = dv.WordOrder
	}
	ord, err := modbus.ParseOrder(o.Order)
	if err != nil {
		return usageErr("%v", err)
	}
	count := max(o.Count, 1)
	var specs []modbus.Spec
	step := ty.Registers(1)
	if t.Bits() {
		step = 1
	}
	for a := o.Address; a < o.Address+count*step && a < 65536; a += step {
		specs = append(specs, modbus.Spec{Table: t, Address: uint16(a), Type: ty, Order: ord, Bit: -1, Length: 1})
	}
	src := device.Source(specs)
	raw := make([]edge.Raw, len(specs))
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	src.Read(rctx, raw)
	var failed error
	for i, r := range raw {
		if r.Err != nil {
			fmt.Fprintf(w, "%s %d: %s: %v\n", t, specs[i].Address, r.Quality, r.Err)
			failed = ErrReadFailed
			continue
		}
		fmt.Fprintf(w, "%s %d: %s\n", t, specs[i].Address, r.Value)
	}
	return failed
}
