package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/config"
	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/edge/audit"
	"github.com/hazwatch/edgecollector/internal/latchfile"
	"github.com/hazwatch/edgecollector/uplink/hj212"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
	"github.com/hazwatch/edgecollector/uplink/mqtt"
)

// collector is one running configuration: buffer, lines, engine, poll
// groups, appender and uplinks.
type collector struct {
	cfg     *config.Config
	log     *slog.Logger
	loc     *time.Location
	start   time.Time
	store   *buffer.Badger
	queue   *edge.Queue
	engine  *edge.Engine
	groups  []*edge.Group
	lines   []*modbus.Line
	devices map[string]*modbus.Device
	i2c     map[string]*edgei2c.Bus
	mqtt    *mqtt.Uplink
	hj212   *hj212.Client
	enc     *jsonfmt.Encoder
	audit   *audit.Log
	// onAppend and onPublish are hooks for the demo's printer and the
	// kill tests.
	onAppend func(*edge.Message, error)
	// onAppendBatch sees each append call's messages after it returned.
	onAppendBatch func([]*edge.Message, error)
	onPublish     func(*edge.Message, bool)
}

// Location returns the fixed zone of a +08:00-style offset.
func Location(offset string) *time.Location {
	sign := 1
	if strings.HasPrefix(offset, "-") {
		sign = -1
	}
	h, _ := strconv.Atoi(offset[1:3])
	m, _ := strconv.Atoi(offset[4:6])
	return time.FixedZone("UTC"+offset, sign*(h*3600+m*60))
}

func uplinkNames(c *config.Config) []string {
	var n []string
	if c.Uplink.MQTT != nil {
		n = append(n, "mqtt")
	}
	if c.Uplink.HJ212 != nil {
		n = append(n, "hj212")
	}
	return n
}

// checkHardware fails fast, naming the device, when a serial port named in
// the config cannot be opened.
func checkHardware(c *config.Config) error {
	var errs []error
	for _, b := range c.Buses {
		switch b.Type {
		case config.BusModbusRTU:
			f, err := os.OpenFile(b.Device, os.O_RDWR, 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("bus %q: serial port %s: %w", b.Name, b.Device, err))
				continue
			}
			f.Close()
		}
	}
	return errors.Join(errs...)
}

// newCollector builds everything from the config; nothing runs yet.
func newCollector(ctx context.Context, cfg *config.Config, log *slog.Logger, d deps, prev *collector) (*collector, error) {
	c := &collector{cfg: cfg, log: log, loc: Location(cfg.Gateway.UTCOffset), start: time.Now(), devices: map[string]*modbus.Device{}, i2c: map[string]*edgei2c.Bus{}}
	c.enc = &jsonfmt.Encoder{Enterprise: cfg.Gateway.Enterprise, Gateway: cfg.Gateway.Code, Location: c.loc}
	c.queue = edge.NewQueue(cfg.Buffer.Queue)
	dir := cfg.Resolve(cfg.Buffer.Dir)
	store, err := buffer.OpenBadger(ctx, buffer.BadgerOpts{
		Opts: buffer.Opts{Uplinks: uplinkNames(cfg), MaxBytes: int64(cfg.Buffer.MaxBytes), Retention: cfg.Buffer.Retention.D(), Location: c.loc},
		Dir:  dir, MinFree: int64(cfg.Buffer.MinFree), MemoryQueue: cfg.Buffer.MemoryQueue, Profile: cfg.Buffer.Profile, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	c.store = store
	ok := false
	key, err := audit.ReadKey(cfg.Resolve(cfg.Audit.KeyFile))
	if err != nil {
		store.Close()
		return nil, err
	}
	if c.audit, err = audit.Open(cfg.AuditFile(), key); err != nil {
		store.Close()
		return nil, err
	}
	defer func() {
		if !ok {
			c.close()
		}
	}()
	// Lines and devices.
	lines := map[string]*modbus.Line{}
	for _, b := range cfg.Buses {
		if b.Type != config.BusModbusTCP && b.Type != config.BusModbusRTU {
			continue
		}
		lo := modbus.LineOpts{Name: b.Name, Logger: log}
		if b.Type == config.BusModbusTCP {
			lo.Address, lo.ConnectTimeout = b.Address, b.ConnectTimeout.D()
		} else {
			lo.Device, lo.Baud, lo.DataBits, lo.Parity, lo.StopBits, lo.FrameGap = b.Device, b.Baud, b.DataBits, b.Parity, b.StopBits, b.FrameGap.D()
		}
		l, err := modbus.NewLine(lo)
		if err != nil {
			return nil, err
		}
		lines[b.Name] = l
		c.lines = append(c.lines, l)
	}
	if err := c.openI2CBuses(d); err != nil {
		return nil, err
	}
	for _, dv := range cfg.Devices {
		l := lines[dv.Bus]
		if l == nil {
			continue
		}
		c.devices[dv.Name] = modbus.NewDevice(l, modbus.DeviceOpts{Name: dv.Name, Unit: byte(*dv.Unit), Timeout: dv.Timeout.D(),
			Retries: *dv.Retries, ProbeEvery: dv.ProbeEvery, Logger: log,
			Limits: modbus.Limits{MaxRegisters: dv.MaxRegisters, MaxBits: dv.MaxBits, MaxGap: *dv.MaxGap}})
	}
	// Engine.
	eo := edge.EngineOpts{Now: time.Now, Logger: log, Latches: latchfile.New(filepath.Join(dir, "interlocks.json")), Emit: c.queue.Put, NoRestore: prev != nil,
		Stats: cfg.Uplink.HJ212 != nil && *cfg.Uplink.HJ212.Stats, Location: c.loc}
	for i := range cfg.Points {
		eo.Points = append(eo.Points, pointConf(&cfg.Points[i], cfg.Device(cfg.Points[i].Device)))
	}
	for _, il := range cfg.Interlocks {
		ic, err := c.interlockConf(il)
		if err != nil {
			return nil, err
		}
		eo.Interlocks = append(eo.Interlocks, ic)
	}
	if c.engine, err = edge.NewEngine(eo); err != nil {
		return nil, err
	}
	if prev != nil {
		c.engine.Adopt(prev.engine)
	}
	c.auditRecord("config", "loaded", cfg.File, "", fmt.Sprintf("%d points, %d interlocks", len(cfg.Points), len(cfg.Interlocks)))
	c.systemEvent(edge.StateConfigLoaded, "config", fmt.Sprintf("config %s loaded: %d points, %d interlocks", cfg.File, len(cfg.Points), len(cfg.Interlocks)))
	if err := c.buildGroups(d); err != nil {
		return nil, err
	}
	if m := cfg.Uplink.MQTT; m != nil {
		if err := c.buildMQTT(m); err != nil {
			return nil, err
		}
	}
	if h := cfg.Uplink.HJ212; h != nil {
		if err := c.buildHJ212(h); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// pointConf compiles a point; dv is its device (ADC inputs read the loop
// current in mA directly).
func pointConf(p *config.Point, dv *config.Device) edge.PointConf {
	pc := edge.PointConf{Code: p.Code, Name: p.Name, Kind: p.Kind, Unit: p.Unit, Interval: p.Interval.D(), Device: p.Device,
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

func (c *collector) interlockConf(il config.Interlock) (edge.InterlockConf, error) {
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
			dev := c.devices[o.Device]
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

// buildGroups makes one poll group per (bus, interval).
func (c *collector) buildGroups(d deps) error {
	type key struct {
		bus      string
		interval time.Duration
	}
	type devPoints struct {
		specs []modbus.Spec
		idx   []int
	}
	groups := map[key]map[string]*devPoints{}
	var keys []key
	for i := range c.cfg.Points {
		p := &c.cfg.Points[i]
		dv := c.cfg.Device(p.Device)
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
		if b := c.cfg.Bus(dv.Bus); b.Type != config.BusI2C {
			sp, err := modbusSpec(p, dv)
			if err != nil {
				return err
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
	for _, k := range keys {
		g := &edge.Group{Name: fmt.Sprintf("%s@%s", k.bus, k.interval), Interval: k.interval, Engine: c.engine, Queue: c.queue,
			MaxMessageBytes: c.cfg.Buffer.MaxMessageBytes, Logger: c.log}
		names := make([]string, 0, len(groups[k]))
		for n := range groups[k] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			dp := groups[k][n]
			var src edge.Source
			if dev := c.devices[n]; dev != nil {
				src = dev.Source(dp.specs)
			} else {
				s, err := c.i2cSource(n, dp.idx, c.log)
				if err != nil {
					return err
				}
				src = s
			}
			g.Sources = append(g.Sources, edge.GroupSource{Source: src, Points: dp.idx})
		}
		c.groups = append(c.groups, g)
	}
	return nil
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

func (c *collector) buildMQTT(m *config.MQTT) error {
	var tlsConf *tls.Config
	if m.TLS != nil || strings.HasPrefix(m.URL, "ssl") || strings.HasPrefix(m.URL, "tls") || strings.HasPrefix(m.URL, "mqtts") || strings.HasPrefix(m.URL, "wss") {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if t := m.TLS; t != nil {
			tlsConf.ServerName, tlsConf.InsecureSkipVerify = t.ServerName, t.InsecureSkipVerify
			if t.CA != "" {
				pem, err := os.ReadFile(c.cfg.Resolve(t.CA))
				if err != nil {
					return fmt.Errorf("uplink.mqtt.tls.ca: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("uplink.mqtt.tls.ca: %s holds no certificate", t.CA)
				}
				tlsConf.RootCAs = pool
			}
			if t.Cert != "" {
				cert, err := tls.LoadX509KeyPair(c.cfg.Resolve(t.Cert), c.cfg.Resolve(t.Key))
				if err != nil {
					return fmt.Errorf("uplink.mqtt.tls: client certificate: %w", err)
				}
				tlsConf.Certificates = []tls.Certificate{cert}
			}
		}
	}
	password := ""
	switch {
	case m.PasswordFile != "":
		b, err := os.ReadFile(c.cfg.Resolve(m.PasswordFile))
		if err != nil {
			return fmt.Errorf("uplink.mqtt.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	case m.PasswordEnv != "":
		password = os.Getenv(m.PasswordEnv)
		if password == "" {
			c.log.Warn("MQTT password variable is empty or unset", "variable", m.PasswordEnv)
		}
	}
	o := mqtt.Opts{Name: "mqtt", URL: m.URL, ClientID: m.ClientID, TopicPrefix: m.TopicPrefix, Username: m.Username, Password: password,
		TLS: tlsConf, KeepAlive: m.KeepAlive.D(), Inflight: m.Inflight, BacklogRate: m.BacklogRate, Heartbeat: m.Heartbeat.D(),
		ReconnectMin: m.ReconnectMin.D(), ReconnectMax: m.ReconnectMax.D(), Store: c.store,
		Encoder: &jsonfmt.Encoder{Enterprise: c.enc.Enterprise, Gateway: c.enc.Gateway, Location: c.loc},
		Status:  func() jsonfmt.Heartbeat { return c.heartbeat("mqtt") }, Meta: c.meta, Logger: c.log,
		OnPublish: func(msg *edge.Message, resend bool) {
			if c.onPublish != nil {
				c.onPublish(msg, resend)
			}
		}}
	if pa := m.PlatformAck; pa != nil && pa.Enabled {
		o.PlatformAck, o.AckTimeout = true, pa.Timeout.D()
	}
	u, err := mqtt.New(o)
	if err != nil {
		return err
	}
	c.mqtt = u
	return nil
}

// systemEvent queues a system event.
func (c *collector) systemEvent(state, subject, msg string) {
	now := time.Now()
	c.queue.Put(&edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{{Type: edge.EventSystem, State: state, Subject: subject, TS: now, Message: msg}}})
}

// rejectConfig reports a config that a reload refused.
func (c *collector) rejectConfig(err error) {
	c.log.Error("config rejected; the running config stays", "err", err)
	c.auditRecord("config", "rejected", c.cfg.File, "", err.Error())
	c.systemEvent(edge.StateConfigRejected, "config", "config rejected, the running one stays: "+err.Error())
}

// reloadAllowed refuses a config that changes an interlock that is
// tripped or bypassed.
func (c *collector) reloadAllowed(next *config.Config) error {
	var errs []string
	for _, name := range c.engine.Held() {
		cur, nxt := c.cfg.Interlock(name), next.Interlock(name)
		if nxt == nil || !reflect.DeepEqual(cur, nxt) {
			errs = append(errs, fmt.Sprintf("interlock %q is tripped or bypassed: reset it (or let the bypass end) before changing or removing it", name))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func (c *collector) buildHJ212(h *config.HJ212) error {
	o := hj212.DefaultOpts()
	o.Name, o.Address, o.Version, o.ST, o.PW, o.MN = "hj212", h.Address, h.Version, h.ST, h.PW, h.MN
	o.Ack, o.OverTime, o.ReCount, o.Heartbeat = *h.Ack, h.OverTime.D(), h.ReCount, h.Heartbeat.D()
	o.Location, o.Store, o.Logger = c.loc, c.store, c.log
	o.Factors = map[string]string{}
	for _, p := range c.cfg.Points {
		if p.HJ212 != nil && p.HJ212.Factor != "" {
			o.Factors[p.Code] = p.HJ212.Factor
		}
	}
	if e := h.Encryption; e != nil {
		raw, err := os.ReadFile(c.cfg.Resolve(e.KeyFile))
		if err != nil {
			return fmt.Errorf("uplink.hj212.encryption.key_file: %w", err)
		}
		if o.SM4Key, err = hj212.ParseKey(raw); err != nil {
			return fmt.Errorf("uplink.hj212.encryption.key_file: %w", err)
		}
		o.SM4Encoding = e.Encoding
	}
	cl, err := hj212.New(o)
	if err != nil {
		return fmt.Errorf("uplink.hj212: %w", err)
	}
	c.hj212 = cl
	return nil
}

// heartbeat is the status an uplink publishes.
func (c *collector) heartbeat(uplink string) jsonfmt.Heartbeat {
	st := c.store.Stats()
	us := st.Uplinks[uplink]
	_, head := c.audit.Head()
	hb := jsonfmt.Heartbeat{AuditHead: head, UptimeS: int64(time.Since(c.start).Seconds()), LastSeq: st.LastSeq, Backlog: us.Depth,
		OldestUnsent: c.enc.TimePtr(us.OldestUnacked), Dropped: st.Dropped, Durable: st.Durable, Degraded: st.Degraded,
		RetentionFrom: c.enc.TimePtr(st.Oldest), BufferBytes: st.Bytes}
	for _, r := range st.DroppedRanges {
		hb.DroppedRanges = append(hb.DroppedRanges, [2]uint64{r.First, r.Last})
	}
	_, ils := c.engine.Snapshot()
	now := time.Now()
	for _, il := range ils {
		bypassed := now.Before(il.BypassUntil)
		if il.Tripped {
			hb.Tripped = append(hb.Tripped, il.Name)
		}
		if bypassed {
			hb.Bypassed = append(hb.Bypassed, il.Name)
		}
		hi := jsonfmt.HeartbeatInterlock{Name: il.Name, Tripped: il.Tripped, Bypassed: bypassed, Cause: il.Cause, Actions: []jsonfmt.HeartbeatAction{}}
		for _, a := range il.Actions {
			hi.Actions = append(hi.Actions, jsonfmt.HeartbeatAction{Device: a.Device, Table: a.Table, Address: a.Address, Write: a.Write,
				State: a.State, Error: a.Error, Since: c.enc.TimePtr(a.Since), ReadBack: a.ReadBack, Feedback: a.Feedback})
		}
		hb.Interlocks = append(hb.Interlocks, hi)
	}
	return hb
}

// meta is the point catalogue.
func (c *collector) meta() []byte {
	var pts []jsonfmt.MetaPoint
	live, _ := c.engine.Snapshot()
	for i, p := range c.cfg.Points {
		mp := jsonfmt.MetaPoint{Point: p.Code, Name: p.Name, Kind: p.Kind, Unit: p.Unit, Thresholds: map[string]*float64{"LL": nil, "L": nil, "H": nil, "HH": nil},
			InService: true}
		if m := live[i].Maintenance; m != nil {
			mp.InService = false
			mp.OutOfService = &jsonfmt.OutOfService{Reason: m.Reason, By: m.By, Since: c.enc.TimePtr(m.Since), Until: c.enc.TimePtr(m.Until)}
		}
		if len(p.Range) == 2 {
			mp.Range = &[2]float64{p.Range[0], p.Range[1]}
		}
		if a := p.Alarms; a != nil {
			mp.Thresholds = map[string]*float64{"LL": a.LL, "L": a.L, "H": a.H, "HH": a.HH}
		}
		if p.HJ212 != nil {
			mp.Factor = p.HJ212.Factor
		}
		pts = append(pts, mp)
	}
	return c.enc.Meta(time.Now(), pts)
}

// run runs the collector until ctx ends, then shuts down in order: stop
// polling, flush appends, drain the uplinks under a deadline, close the
// buffer last.
func (c *collector) run(ctx context.Context, extra ...func(context.Context) error) error {
	pollCtx, stopPoll := context.WithCancel(context.Background())
	appendCtx, stopAppend := context.WithCancel(context.Background())
	upCtx, stopUp := context.WithCancel(context.Background())
	defer stopPoll()
	defer stopAppend()
	defer stopUp()
	var polls, appends, ups sync.WaitGroup
	errs := make(chan error, 16)
	goRun := func(wg *sync.WaitGroup, ctx context.Context, name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	for _, g := range c.groups {
		goRun(&polls, pollCtx, "poll group "+g.Name, g.Run)
	}
	goRun(&polls, pollCtx, "interlock engine", c.engine.Run)
	app := &edge.Appender{Queue: c.queue, Sink: c.store, Logger: c.log, OnAppend: func(m *edge.Message, err error) {
		c.auditMessage(m)
		if c.onAppend != nil {
			c.onAppend(m, err)
		}
	}, OnBatch: c.onAppendBatch, CommitInterval: commitInterval(c.cfg)}
	goRun(&appends, appendCtx, "appender", app.Run)
	if c.mqtt != nil {
		goRun(&ups, upCtx, "mqtt uplink", c.mqtt.Run)
	}
	if c.hj212 != nil {
		goRun(&ups, upCtx, "hj212 uplink", c.hj212.Run)
	}
	goRun(&ups, upCtx, "status listener", c.serveStatus)
	for i, f := range extra {
		goRun(&ups, upCtx, fmt.Sprintf("service %d", i), f)
	}
	c.log.Info("collector running", "groups", len(c.groups), "points", len(c.cfg.Points), "interlocks", len(c.cfg.Interlocks),
		"buffer", c.cfg.Resolve(c.cfg.Buffer.Dir), "last_seq", c.store.LastSeq())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		c.log.Error("collector stopping on error", "err", err)
	}
	c.log.Info("shutting down: stopping polls")
	stopPoll()
	polls.Wait()
	c.log.Info("shutting down: flushing appends", "queued", c.queue.Len())
	stopAppend()
	appends.Wait()
	c.log.Info("shutting down: draining uplinks")
	stopUp()
	ups.Wait()
	c.close()
	c.log.Info("stopped")
	return err
}

// auditRecord appends to the audit log; a failure is logged, never fatal.
func (c *collector) auditRecord(kind, action, subject, who, detail string) {
	if c.audit == nil {
		return
	}
	if err := c.audit.Record(kind, action, subject, who, detail); err != nil {
		c.log.Error("audit log write failed", "err", err)
	}
}

// auditMessage records a message's events in the audit log.
func (c *collector) auditMessage(m *edge.Message) {
	for _, e := range m.Events {
		subject := e.Point + e.Interlock + e.Subject
		detail := e.Message
		if e.Level != "" {
			detail = strings.TrimSpace(e.Level + " " + e.Value.String() + " " + detail)
		}
		c.auditRecord(e.Type.String(), e.State, subject, "", fmt.Sprintf("seq %d: %s", m.Seq, detail))
	}
}

func (c *collector) close() {
	if c.audit != nil {
		c.audit.Close()
	}
	for _, b := range c.i2c {
		b.Close()
	}
	for _, l := range c.lines {
		l.Close()
	}
	if c.store != nil {
		if err := c.store.Close(); err != nil {
			c.log.Error("closing the buffer", "err", err)
		}
	}
}

// commitInterval is the appender's group-commit window (0 when unset).
func commitInterval(cfg *config.Config) time.Duration {
	if p := cfg.Buffer.CommitInterval; p != nil {
		return p.D()
	}
	return 0
}
