package collector

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
)

// lineOpts are a Modbus bus's line settings.
func lineOpts(b *config.Bus) modbus.LineOpts {
	lo := modbus.LineOpts{Name: b.Name}
	if b.Type == config.BusModbusTCP {
		lo.Address, lo.ConnectTimeout = b.Address, b.ConnectTimeout.D()
	} else {
		lo.Device, lo.Baud, lo.DataBits, lo.Parity, lo.StopBits, lo.FrameGap = b.Device, b.Baud, b.DataBits, b.Parity, b.StopBits, b.FrameGap.D()
	}
	return lo
}

// deviceOpts are a Modbus device's settings.
func deviceOpts(dv *config.Device) modbus.DeviceOpts {
	return modbus.DeviceOpts{Name: dv.Name, Unit: byte(*dv.Unit), Timeout: dv.Timeout.D(), Retries: *dv.Retries, ProbeEvery: dv.ProbeEvery,
		Limits: modbus.Limits{MaxRegisters: dv.MaxRegisters, MaxBits: dv.MaxBits, MaxGap: *dv.MaxGap}}
}

// pointConf compiles a point; dv is its device (ADC inputs read the loop
// current in mA directly).
func pointConf(p *config.Point, dv *config.Device) edge.PointConf {
	pc := edge.PointConf{Code: p.Code, Name: p.Name, Kind: p.Kind, Unit: p.Unit, Interval: p.Interval.D(), Device: p.Device, RTD: p.HJ212 != nil && p.HJ212.Factor != "",
		Scale: *p.Scale, Offset: p.Offset, Loop: p.Loop, StuckAfter: p.StuckAfter.D(), Maintenance: p.Maintenance,
		Gas: p.Kind == "gas", OnChange: p.Report.Mode == config.ReportChange, Deadband: p.Report.Deadband, MaxInterval: p.Report.MaxInterval.D()}
	if len(p.Range) == 2 {
		pc.RangeLo, pc.RangeHi = p.Range[0], p.Range[1]
	}
	if len(p.RawRange) == 2 && len(p.Range) == 2 {
		pc.RawLo, pc.RawHi, pc.EngLo, pc.EngHi = p.RawRange[0], p.RawRange[1], p.Range[0], p.Range[1]
	}
	if dv != nil && (dv.Model == "ads1115" || dv.Model == "ads1015") && dv.ShuntOhms > 0 && p.Loop {
		// The ADC source gives the loop current in mA: 4-20 mA onto the range.
		pc.Current = true
		if len(p.RawRange) != 2 && len(p.Range) == 2 {
			pc.RawLo, pc.RawHi, pc.EngLo, pc.EngHi = 4, 20, p.Range[0], p.Range[1]
		}
	}
	for _, d := range p.Diagnostics {
		bit, mask, in := d.Condition()
		q, _ := edge.ParseQuality(d.QualityName())
		pc.Diagnostics = append(pc.Diagnostics, edge.DiagConf{Name: d.Name, Bit: bit, Mask: mask, In: in, Quality: q})
	}
	for _, st := range p.States {
		if pc.States == nil {
			pc.States = map[float64]string{}
		}
		pc.States[float64(*st.Value)] = st.Name
	}
	if a := p.Alarms; a != nil {
		pc.Alarms = &edge.Limits{LL: a.LL, L: a.L, H: a.H, HH: a.HH, Hysteresis: a.Hysteresis, OnDelay: a.OnDelay.D(), OffDelay: a.OffDelay.D()}
		if a.AlarmWhen != nil {
			pc.Alarms.When = a.AlarmWhen
			pc.Alarms.WhenLevel, _ = edge.ParseLevel(a.DiscreteLevel())
		}
	}
	return pc
}

// engineConf compiles the points and interlocks of cfg for the engine,
// with the Modbus devices that interlock actions write to.
func (c *Collector) engineConf(cfg *config.Config, devices map[string]*modbus.Device) ([]edge.PointConf, []edge.InterlockConf, error) {
	var pts []edge.PointConf
	for i := range cfg.Points {
		pts = append(pts, pointConf(&cfg.Points[i], cfg.Device(cfg.Points[i].Device)))
	}
	var ils []edge.InterlockConf
	for _, il := range cfg.Interlocks {
		ic, err := interlockConf(il, devices)
		if err != nil {
			return nil, nil, err
		}
		ils = append(ils, ic)
	}
	return pts, ils, nil
}

func interlockConf(il config.Interlock, devices map[string]*modbus.Device) (edge.InterlockConf, error) {
	need, err := config.MooN(il.When.Vote, len(il.When.Inputs))
	if err != nil {
		return edge.InterlockConf{}, err
	}
	ic := edge.InterlockConf{Name: il.Name, Description: il.Description, Need: need, HoldOnFault: il.OnFault == config.OnFaultHold,
		OnDelay: il.OnDelay.D(), Latch: *il.Latch, ReadbackEvery: il.ReadbackEvery.D()}
	for _, in := range il.When.Inputs {
		lv, _ := edge.ParseLevel(in.Level)
		ic.Inputs = append(ic.Inputs, edge.InputConf{Point: in.Point, Level: lv})
	}
	conv := func(outs []config.Output) ([]edge.ActionConf, error) {
		var acts []edge.ActionConf
		for _, o := range outs {
			dev := devices[o.Device]
			if dev == nil {
				return nil, fmt.Errorf("interlock %q: device %q is not a Modbus device", il.Name, o.Device)
			}
			t := edge.OutputCoil
			if o.Table == config.TableHolding {
				t = edge.OutputHolding
			}
			ac := edge.ActionConf{Device: o.Device, Writer: dev, Table: t, Address: uint16(*o.Address), Value: *o.Value, Verify: *o.Verify, Retries: *o.Retries}
			if fb := o.Feedback; fb != nil {
				ac.Feedback = &edge.FeedbackConf{Point: fb.Point, Value: fb.Value.Num, Within: fb.Within.D()}
			}
			acts = append(acts, ac)
		}
		return acts, nil
	}
	if ic.Actions, err = conv(il.Actions); err != nil {
		return ic, err
	}
	ic.OnReset, err = conv(il.OnReset)
	return ic, err
}

// groupRun is a poll group and what says whether a reload changed it:
// fp (a SHA-256) covers its bus, its devices and the configuration of every
// point it polls.
type groupRun struct {
	g   *edge.Group
	bus string
	// fpOf is what makes the group what it is (its line, interval,
	// devices and points' config); fp is its SHA-256, made when a reload
	// first compares groups (hashing a thousand points' JSON was a
	// twentieth of the start's CPU, for a reload that may never come).
	fpOf   []any
	fp     string
	cancel context.CancelFunc
	done   chan struct{}
}

// fingerprint returns the hash of what makes the group, made once: the
// JSON of a thousand points' configuration is half a megabyte, not kept.
func (g *groupRun) fingerprint() (string, error) {
	if g.fpOf != nil {
		h := sha256.New()
		if err := json.NewEncoder(h).Encode(g.fpOf); err != nil {
			return "", err
		}
		g.fp, g.fpOf = string(h.Sum(nil)), nil
	}
	return g.fp, nil
}

// buildGroups makes one poll group per (bus, interval) of cfg.
func (c *Collector) buildGroups(cfg *config.Config, devices map[string]*modbus.Device) ([]*groupRun, error) {
	type key struct {
		bus      string
		interval time.Duration
	}
	type devPoints struct {
		specs []modbus.Spec
		idx   []int
		conf  []*config.Point
	}
	groups := map[key]map[string]*devPoints{}
	var keys []key
	for i := range cfg.Points {
		p := &cfg.Points[i]
		dv := cfg.Device(p.Device)
		k := key{dv.Bus, p.Interval.D()}
		if groups[k] == nil {
			groups[k] = map[string]*devPoints{}
			keys = append(keys, k)
		}
		dp := groups[k][dv.Name]
		if dp == nil {
			dp = &devPoints{}
			groups[k][dv.Name] = dp
		}
		dp.idx = append(dp.idx, c.engine.Index(p.Code))
		dp.conf = append(dp.conf, p)
		if b := cfg.Bus(dv.Bus); b.Type != config.BusI2C {
			sp, err := modbusSpec(p, dv)
			if err != nil {
				return nil, err
			}
			dp.specs = append(dp.specs, sp)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].bus != keys[j].bus {
			return keys[i].bus < keys[j].bus
		}
		return keys[i].interval < keys[j].interval
	})
	var out []*groupRun
	for _, k := range keys {
		g := &edge.Group{Name: fmt.Sprintf("%s@%s", k.bus, k.interval), Interval: k.interval, Engine: c.engine, Queue: c.queue,
			MaxMessageBytes: cfg.Buffer.MaxMessageBytes}
		names := make([]string, 0, len(groups[k]))
		for n := range groups[k] {
			names = append(names, n)
		}
		sort.Strings(names)
		fp := []any{cfg.Bus(k.bus), k.interval, cfg.Buffer.MaxMessageBytes}
		for _, n := range names {
			dp := groups[k][n]
			fp = append(fp, cfg.Device(n), dp.conf)
			var src edge.Source
			if dev := devices[n]; dev != nil {
				src = dev.Source(dp.specs)
			} else {
				s, err := c.i2cSource(n, dp.idx, c.log)
				if err != nil {
					return nil, err
				}
				src = s
			}
			g.Sources = append(g.Sources, edge.GroupSource{Device: n, Source: src, Points: dp.idx})
		}
		out = append(out, &groupRun{g: g, bus: k.bus, fpOf: fp})
	}
	return out, nil
}

func modbusSpec(p *config.Point, dv *config.Device) (modbus.Spec, error) {
	t, err := modbus.ParseTable(p.Source.Table)
	if err != nil {
		return modbus.Spec{}, fmt.Errorf("point %q: %w", p.Code, err)
	}
	typ, err := modbus.ParseType(p.Source.Type)
	if err != nil {
		return modbus.Spec{}, fmt.Errorf("point %q: %w", p.Code, err)
	}
	wo := dv.WordOrder
	if p.Source.WordOrder != "" {
		wo = p.Source.WordOrder
	}
	ord, err := modbus.ParseOrder(wo)
	if err != nil {
		return modbus.Spec{}, fmt.Errorf("point %q: %w", p.Code, err)
	}
	bit, width := -1, 0
	if p.Source.Bit != nil {
		bit = *p.Source.Bit
	}
	if p.Source.Bits != "" {
		if bit, width, err = config.ParseBits(p.Source.Bits); err != nil {
			return modbus.Spec{}, fmt.Errorf("point %q: %w", p.Code, err)
		}
	}
	sp := modbus.Spec{Table: t, Address: uint16(*p.Source.Address), Type: typ, Order: ord, Bit: bit, Length: p.Source.Length, Width: width}
	for _, d := range p.Diagnostics {
		dt, err := modbus.ParseTable(d.Source.Table)
		if err != nil {
			return modbus.Spec{}, fmt.Errorf("point %q: diagnostic %q: %w", p.Code, d.Name, err)
		}
		ds := modbus.Spec{Table: dt, Address: uint16(*d.Source.Address), Type: modbus.Uint16, Bit: -1}
		if dt.Bits() {
			ds.Type = modbus.Bool
		}
		sp.Diag = append(sp.Diag, ds)
	}
	return sp, nil
}
