package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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

// Deps are what the caller injects in place of the machine's hardware and
// what it wants to see of the running collector.
type Deps struct {
	// OpenI2C opens an I2C bus by name (default: periph.io's host drivers).
	OpenI2C edgei2c.Opener
	// Logger is the collector's log (default: discarded).
	Logger *slog.Logger
	// Prev is the collector this one replaces after a reload: the state of
	// unchanged points and interlocks is adopted, latches are not restored
	// from the state file again.
	Prev *Collector
	// OnAppendBatch sees each append call's messages after it returned
	// (err != nil: they are not durable).
	OnAppendBatch func([]*edge.Message, error)
	// BufferProbe runs the buffer's probe in a child process (the binary:
	// buffer.SelfProbe("buffer-probe")), so that a database that makes
	// badger panic is moved aside instead of crash-looping; nil: opened in
	// this process only.
	BufferProbe func(ctx context.Context, args ...string) *exec.Cmd
}

// Collector is one running configuration: buffer, lines, engine, poll
// groups, appender, uplinks and the status listener.
type Collector struct {
	cfg     *config.Config
	log     *slog.Logger
	loc     *time.Location
	start   time.Time
	store   *buffer.Badger
	queue   *edge.Queue
	engine  *edge.Engine
	groups  []*groupRun
	lines   []*modbus.Line
	dtus    map[string]*modbus.DTUListener // modbus-rtu-dtu listeners by address (dtu.go)
	devices map[string]*modbus.Device
	i2c     map[string]*edgei2c.Bus
	mqtt    *mqtt.Uplink
	hj212   *hj212.Client
	enc     *jsonfmt.Encoder
	audit   *audit.Log
	deps    Deps

	// rt guards what a reload applied in place replaces while the collector
	// runs: cfg, groups, lines, devices (readers: status, meta).
	rt sync.RWMutex
	// lineOf is the Modbus line of each bus; run holds what Run started
	// that a reload may stop and start (groups), nil outside Run.
	lineOf map[string]*modbus.Line
	run    *runParts

	closeOnce sync.Once
	mu        sync.Mutex
	// statusL is the status listener, bound by Run before polling starts.
	statusL *limitListener
	stop    context.CancelFunc // ends Run for a reload
	next    *config.Config     // the accepted config of a reload
	svcErr  map[string]string  // last error of each supervised service
	svcRes  map[string]uint64  // restarts of each supervised service
	// listeners are the callers' listeners (the control socket), for status.
	listeners []*limitListener
	events    eventRing // the last events appended, for Status
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

// checkSerial fails fast, naming the device, when a serial port named in
// the config cannot be opened.
func checkSerial(c *config.Config) error {
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

// New builds everything from a validated config; nothing runs until Run.
// It opens the buffer (ctx bounds its recovery), the audit log and the I2C
// buses; Modbus lines open at their first request.
func New(ctx context.Context, cfg *config.Config, d Deps) (*Collector, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.OpenI2C == nil {
		d.OpenI2C = edgei2c.OpenHost
	}
	log, prev := d.Logger, d.Prev
	c := &Collector{cfg: cfg, log: log, loc: Location(cfg.Gateway.UTCOffset), start: time.Now(), devices: map[string]*modbus.Device{},
		i2c: map[string]*edgei2c.Bus{}, deps: d, svcErr: map[string]string{}, svcRes: map[string]uint64{}, lineOf: map[string]*modbus.Line{},
		dtus: map[string]*modbus.DTUListener{}}
	c.enc = &jsonfmt.Encoder{Enterprise: cfg.Gateway.Enterprise, Gateway: cfg.Gateway.Code, Location: c.loc}
	c.queue = edge.NewQueue(cfg.Buffer.Queue)
	dir := cfg.Resolve(cfg.Buffer.Dir)
	bo := buffer.BadgerOpts{
		Opts: buffer.Opts{Uplinks: uplinkNames(cfg), MaxBytes: int64(cfg.Buffer.MaxBytes), Retention: cfg.Buffer.Retention.D(), Location: c.loc},
		Dir:  dir, MinFree: int64(cfg.Buffer.MinFree), MemoryQueue: cfg.Buffer.MemoryQueue, Profile: cfg.Buffer.Profile, Logger: log,
		Background: true, // polling never waits for the disk
	}
	if prev == nil {
		bo.Probe = d.BufferProbe // a reload reopens what this process just had open
	}
	store, err := buffer.OpenBadger(ctx, bo)
	if err != nil {
		return nil, err
	}
	c.store = store
	ok := false
	if err := c.openAudit(cfg); err != nil {
		store.Close()
		return nil, err
	}
	if r := c.audit.Repaired; r != "" {
		log.Warn("audit log repaired after a crash", "file", cfg.AuditFile(), "repair", r)
		c.auditRecord("system", "repaired", cfg.AuditFile(), "", r)
	}
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	// Lines and devices.
	lines := map[string]*modbus.Line{}
	for _, b := range cfg.Buses {
		if !modbusBus(b.Type) {
			continue
		}
		l, err := newModbusLine(&b, lineOpts(&b), c.dtus, log)
		if err != nil {
			return nil, err
		}
		lines[b.Name] = l
		c.lines = append(c.lines, l)
		c.lineOf[b.Name] = l
	}
	if err := c.openI2CBuses(); err != nil {
		return nil, err
	}
	for _, dv := range cfg.Devices {
		l := lines[dv.Bus]
		if l == nil {
			continue
		}
		o := deviceOpts(&dv)
		o.Logger = log
		c.devices[dv.Name] = modbus.NewDevice(l, o)
	}
	// Engine.
	eo := edge.EngineOpts{Now: time.Now, Logger: log, Latches: latchfile.New(filepath.Join(dir, "interlocks.json")), Emit: c.queue.Put, NoRestore: prev != nil,
		Stats: cfg.Uplink.HJ212 != nil && *cfg.Uplink.HJ212.Stats, Location: c.loc}
	if h := cfg.Uplink.HJ212; h != nil {
		eo.RTDInterval = h.RTDInterval.D()
	}
	if eo.Points, eo.Interlocks, err = c.engineConf(cfg, c.devices); err != nil {
		return nil, err
	}
	if c.engine, err = edge.NewEngine(eo); err != nil {
		return nil, err
	}
	if prev != nil {
		c.engine.Adopt(prev.engine)
	}
	c.auditRecord("config", "loaded", cfg.File, "", fmt.Sprintf("sha256 %s: %d points, %d interlocks", cfg.SHA256, len(cfg.Points), len(cfg.Interlocks)))
	c.systemEvent(edge.StateConfigLoaded, "config", fmt.Sprintf("config %s (sha256 %s) loaded: %d points, %d interlocks", cfg.File, short(cfg.SHA256), len(cfg.Points), len(cfg.Interlocks)))
	if prev == nil {
		c.saveVersion(cfg, "start", "start", "")
	}
	if c.groups, err = c.buildGroups(cfg, c.devices); err != nil {
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

// systemEvent queues a system event.
func (c *Collector) systemEvent(state, subject, msg string) {
	now := time.Now()
	c.queue.Put(&edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{{Type: edge.EventSystem, State: state, Subject: subject, TS: now, Message: msg}}})
}

// rejectConfig reports a config that a reload refused.
func (c *Collector) rejectConfig(err error) {
	c.log.Error("config rejected; the running config stays", "err", err)
	c.auditRecord("config", "rejected", c.Config().File, "", err.Error())
	c.systemEvent(edge.StateConfigRejected, "config", "config rejected, the running one stays: "+err.Error())
}

// reloadAllowed refuses a config that changes an interlock that is
// tripped or bypassed.
func (c *Collector) reloadAllowed(next *config.Config) error {
	var errs []string
	for _, name := range c.engine.Held() {
		cur, nxt := c.Config().Interlock(name), next.Interlock(name)
		if nxt == nil || !reflect.DeepEqual(cur, nxt) {
			errs = append(errs, fmt.Sprintf("interlock %q is tripped or bypassed: reset it (or let the bypass end) before changing or removing it", name))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Service is something that runs beside the poll path for as long as the
// collector runs (the control socket's server is one): it is supervised,
// so an error or a panic in it restarts it with back-off and never stops
// polling or interlocks.
type Service struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run runs the collector until ctx ends or a reload is accepted, then shuts
// down in order: stop polling, flush appends, drain the uplinks under a
// deadline, close the buffer last. Only the poll path (poll groups, the
// interlock engine, the appender) can end Run with an error; the uplinks,
// the status listener and the services run supervised apart from it.
func (c *Collector) Run(ctx context.Context, services ...Service) error {
	cfg := c.Config()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	c.mu.Lock()
	c.stop = stop
	c.mu.Unlock()
	if _, err := c.listenStatus(); err != nil {
		c.Close()
		return err
	}
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
	supervised := func(name string, f func(context.Context) error) {
		ups.Add(1)
		go func() {
			defer ups.Done()
			c.supervise(upCtx, name, f)
		}()
	}
	c.rt.Lock()
	c.run = &runParts{ctx: pollCtx, wg: &polls, errs: errs, groups: map[*groupRun]bool{}}
	for _, g := range c.groups {
		c.startGroup(g)
	}
	c.rt.Unlock()
	goRun(&polls, pollCtx, "interlock engine", c.engine.Run)
	goRun(&polls, pollCtx, "DTU listeners", runDTUs(c.dtus))
	app := &edge.Appender{Queue: c.queue, Sink: c.store, Logger: c.log, OnAppend: func(m *edge.Message, err error) { c.auditMessage(m); c.events.add(c.enc, cfg.Gateway.Code, m, err) },
		OnBatch: c.deps.OnAppendBatch, CommitInterval: commitInterval(cfg)}
	goRun(&appends, appendCtx, "appender", app.Run)
	if c.mqtt != nil {
		supervised("mqtt uplink", afterOpen(c.store, c.mqtt.Run))
	}
	if c.hj212 != nil {
		supervised("hj212 uplink", afterOpen(c.store, c.hj212.Run))
	}
	if cfg.Status.Listen != "" {
		supervised("status listener", c.serveStatus)
	}
	// The control room's Modbus server (modbusserver.go), off unless configured.
	if ms, err := c.modbusServer(); err != nil {
		c.log.Error("modbus server not started", "err", err)
	} else if ms != nil {
		supervised("modbus server", ms)
	}
	for _, s := range services {
		supervised(s.Name, s.Run)
	}
	c.log.Info("collector running", "groups", len(c.groups), "points", len(cfg.Points), "interlocks", len(cfg.Interlocks),
		"buffer", cfg.Resolve(cfg.Buffer.Dir), "last_seq", c.store.LastSeq())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		c.log.Error("collector stopping on error", "err", err)
	}
	c.log.Info("shutting down: stopping polls")
	stopPoll()
	polls.Wait()
	c.rt.Lock()
	c.run = nil
	c.rt.Unlock()
	c.log.Info("shutting down: flushing appends", "queued", c.queue.Len())
	stopAppend()
	appends.Wait()
	c.log.Info("shutting down: draining uplinks")
	stopUp()
	ups.Wait()
	c.Close()
	c.log.Info("stopped")
	return err
}

// Supervision back-off: the first restart after minBackoff, doubling up to
// maxBackoff; a run that lasted stableAfter starts again from minBackoff.
const (
	minBackoff  = 500 * time.Millisecond
	maxBackoff  = 30 * time.Second
	stableAfter = time.Minute
)

// supervise runs f until ctx ends, restarting it with back-off after an
// error, an early return or a panic.
func (c *Collector) supervise(ctx context.Context, name string, f func(context.Context) error) {
	wait := minBackoff
	for {
		began := time.Now()
		err := runGuarded(ctx, f)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("returned before the collector stopped")
		}
		if time.Since(began) >= stableAfter {
			wait = minBackoff
		}
		c.mu.Lock()
		c.svcErr[name] = err.Error()
		c.svcRes[name]++
		c.mu.Unlock()
		c.log.Error("service failed; polling goes on, restarting it", "service", name, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// runGuarded runs f, turning a panic into an error.
func runGuarded(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f(ctx)
}

// Reload loads the config file again. A config that does not validate, or
// that would change a tripped or bypassed interlock, is rejected (event,
// audit entry and log) and the running one stays. An accepted one is
// applied in place when only points, devices, lines and interlocks changed
// (unchanged poll groups and interlocks never miss a tick); when a section
// the whole collector is built on changed (gateway, buffer, uplinks, audit,
// status listener, I2C) it ends Run, and Next returns it for the caller to
// start with Deps.Prev set.
//
// Reload is the SIGHUP's: its audit entry is written first, and the reload
// is refused when it cannot be (fail closed). The control socket's reload
// is ReloadAs with the peer.
func (c *Collector) Reload() error {
	e, err := c.audit.Write(audit.Rec{Source: "SIGHUP", Category: "config", Type: "reload", Subject: c.Config().File, Result: "requested"})
	if err != nil && e.N == 0 {
		err = fmt.Errorf("reload not carried out: the audit log cannot record it (fail closed): %w", err)
		c.log.Error("SIGHUP reload refused", "err", err)
		return err
	}
	err = c.ReloadAs("SIGHUP", "reload")
	r := audit.Rec{ID: e.ID, Source: "SIGHUP", Category: "config", Type: "reload", Subject: c.Config().File, Result: "ok"}
	if err != nil {
		r.Result = "refused: " + err.Error()
	}
	c.audit.Write(r)
	return err
}

// ReloadAs reloads on behalf of who; how is "reload" or "rollback" (what
// the config history records).
func (c *Collector) ReloadAs(who, how string) error {
	n, err := config.Load(c.Config().File)
	if err == nil {
		err = c.reloadAllowed(n)
	}
	if err != nil {
		c.rejectConfig(err)
		return err
	}
	if why := restartNeeded(c.Config(), n); why == "" {
		c.rt.RLock()
		running := c.run != nil
		c.rt.RUnlock()
		if running {
			if err := c.apply(n); err != nil {
				return err
			}
			c.saveVersion(n, who, how, "applied in place")
			return nil
		}
	} else {
		c.log.Info("config reload restarts the collector", "because", why)
	}
	c.saveVersion(n, who, how, "restarted the collector")
	c.mu.Lock()
	c.next = n
	stop := c.stop
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	return nil
}

// Next is the config a reload accepted (nil when none was).
func (c *Collector) Next() *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// Config is the config the collector runs.
func (c *Collector) Config() *config.Config {
	c.rt.RLock()
	defer c.rt.RUnlock()
	return c.cfg
}

// Reset clears an interlock's latch (who is recorded in the event and the
// audit log); outputs stay as they are unless on_reset says otherwise.
func (c *Collector) Reset(ctx context.Context, name, who string) error {
	return c.engine.Reset(ctx, name, who)
}

// Ack acknowledges a point's alarms.
func (c *Collector) Ack(point, who string) error { return c.engine.Ack(point, who) }

// Maintenance takes a point out of service for d (on) or puts it back;
// a point voting in an interlock that is not bypassed needs force.
func (c *Collector) Maintenance(point string, on bool, d time.Duration, reason, who string, force bool) error {
	return c.engine.Maintenance(point, on, d, reason, who, force)
}

// Bypass bypasses an interlock for d (at most 8 h).
func (c *Collector) Bypass(name string, d time.Duration, who string) error {
	return c.engine.Bypass(name, d, who)
}

// auditRecord appends to the audit log; a failure is logged, never fatal.
func (c *Collector) auditRecord(kind, action, subject, who, detail string) {
	if c.audit == nil {
		return
	}
	if err := c.audit.Record(kind, action, subject, who, detail); err != nil {
		c.log.Error("audit log write failed", "err", err)
	}
}

// auditMessage records a message's events in the audit log.
func (c *Collector) auditMessage(m *edge.Message) {
	for i, e := range m.Events {
		subject := e.Point + e.Interlock + e.Subject
		detail := e.Message
		if e.Level != "" {
			detail = strings.TrimSpace(e.Level + " " + e.Value.String() + " " + detail)
		}
		if c.audit == nil {
			continue
		}
		id := e.ID
		if id == "" {
			id = edge.EventID(c.cfg.Gateway.Code, m.Seq, i)
		}
		if _, err := c.audit.Write(audit.Rec{ID: id, Category: e.Type.String(), Type: e.State, Subject: subject, Detail: fmt.Sprintf("seq %d: %s", m.Seq, detail)}); err != nil {
			c.log.Error("audit log write failed", "err", err)
		}
	}
}

// Close releases what New opened (the buffer last); Run calls it on its
// way out. It is idempotent.
func (c *Collector) Close() { c.closeOnce.Do(c.close) }

func (c *Collector) close() {
	if c.audit != nil {
		c.audit.Close()
	}
	for _, b := range c.i2c {
		b.Close()
	}
	c.rt.RLock()
	for _, l := range c.lines {
		l.Close()
	}
	c.rt.RUnlock()
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

// afterOpen runs f once the buffer's open has settled, so an uplink's first
// connection sees the stored backlog as backlog.
func afterOpen(s *buffer.Badger, f func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-s.Opened():
		case <-ctx.Done():
			return nil
		}
		return f(ctx)
	}
}
