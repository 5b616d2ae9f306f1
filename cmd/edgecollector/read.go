package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
)

// cmdRead is the commissioning probe: read a device's configured points
// (converted, with quality) or raw registers, like mbpoll but through the
// collector's own config, drivers and conversion.
func cmdRead(ctx context.Context, args []string, stdout, stderr io.Writer, d deps) int {
	fs := flags("read", stderr)
	path := fs.String("c", "", "config file")
	dev := fs.String("device", "", "device name from the config")
	point := fs.String("point", "", "comma-separated point codes (default: all points of the device)")
	table := fs.String("table", "", "raw read: coil, discrete, holding or input")
	addr := fs.Int("address", 0, "raw read: 0-based start address")
	count := fs.Int("count", 1, "raw read: how many registers or bits")
	typ := fs.String("type", "uint16", "raw read: decode as this data type")
	order := fs.String("order", "", "raw read: word order (default: the device's)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	dv := cfg.Device(*dev)
	if dv == nil {
		fmt.Fprintf(stderr, "read: no device %q in %s\n", *dev, *path)
		return exitInvalid
	}
	b := cfg.Bus(dv.Bus)
	if b.Type == config.BusI2C {
		fmt.Fprintln(stderr, "read: I2C devices are read with their points: use --point")
	}
	lo := modbus.LineOpts{Name: b.Name}
	if b.Type == config.BusModbusTCP {
		lo.Address, lo.ConnectTimeout = b.Address, b.ConnectTimeout.D()
	} else {
		lo.Device, lo.Baud, lo.DataBits, lo.Parity, lo.StopBits, lo.FrameGap = b.Device, b.Baud, b.DataBits, b.Parity, b.StopBits, b.FrameGap.D()
	}
	line, err := modbus.NewLine(lo)
	if err != nil {
		fmt.Fprintln(stderr, "read:", err)
		return exitFail
	}
	defer line.Close()
	device := modbus.NewDevice(line, modbus.DeviceOpts{Name: dv.Name, Unit: byte(*dv.Unit), Timeout: dv.Timeout.D(), Retries: *dv.Retries,
		Limits: modbus.Limits{MaxRegisters: dv.MaxRegisters, MaxBits: dv.MaxBits, MaxGap: *dv.MaxGap}})
	if *table != "" {
		return readRaw(ctx, stdout, stderr, device, dv, *table, *addr, *count, *typ, *order)
	}
	want := map[string]bool{}
	for _, p := range strings.Split(*point, ",") {
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
				fmt.Fprintln(stderr, "read:", err)
				return exitInvalid
			}
			specs, pts = append(specs, sp), append(pts, p)
		}
	}
	if len(specs) == 0 {
		fmt.Fprintf(stderr, "read: device %q has no such points\n", dv.Name)
		return exitInvalid
	}
	src := device.Source(specs)
	raw := make([]edge.Raw, len(specs))
	src.Read(ctx, raw)
	code = exitOK
	for i, p := range pts {
		pc := pointConf(p, dv)
		v, q := pc.Convert(&raw[i], false)
		fmt.Fprintf(stdout, "%-16s %-24s %-14s %-12s raw=%s", p.Code, specs[i].String(), v.String()+" "+p.Unit, q, raw[i].Value)
		if raw[i].Err != nil {
			fmt.Fprintf(stdout, "  error: %v", raw[i].Err)
			code = exitFail
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "%d points in %d requests\n", len(specs), len(src.Plan().Blocks))
	return code
}

func readRaw(ctx context.Context, stdout, stderr io.Writer, device *modbus.Device, dv *config.Device, table string, addr, count int, typ, order string) int {
	t, err := modbus.ParseTable(table)
	if err != nil {
		fmt.Fprintln(stderr, "read:", err)
		return exitInvalid
	}
	ty, err := modbus.ParseType(typ)
	if err != nil || (t.Bits() && ty != modbus.Bool) {
		ty = modbus.Bool
		if !t.Bits() {
			fmt.Fprintln(stderr, "read: --type:", err)
			return exitInvalid
		}
	}
	if order == "" {
		order = dv.WordOrder
	}
	ord, err := modbus.ParseOrder(order)
	if err != nil {
		fmt.Fprintln(stderr, "read:", err)
		return exitInvalid
	}
	var specs []modbus.Spec
	step := ty.Registers(1)
	if t.Bits() {
		step = 1
	}
	for a := addr; a < addr+count*step && a < 65536; a += step {
		specs = append(specs, modbus.Spec{Table: t, Address: uint16(a), Type: ty, Order: ord, Bit: -1, Length: 1})
	}
	src := device.Source(specs)
	raw := make([]edge.Raw, len(specs))
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	src.Read(rctx, raw)
	code := exitOK
	for i, r := range raw {
		if r.Err != nil {
			fmt.Fprintf(stdout, "%s %d: %s: %v\n", t, specs[i].Address, r.Quality, r.Err)
			code = exitFail
			continue
		}
		fmt.Fprintf(stdout, "%s %d: %s\n", t, specs[i].Address, r.Value)
	}
	return code
}
