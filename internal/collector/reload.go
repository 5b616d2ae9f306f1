package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/configstore"
)

// A reload applied in place: the buffer, the uplinks, the audit log and the
// status listener stay open, the engine keeps every point's and every
// interlock's state, unchanged poll groups keep running without a missed
// tick, and only what changed is stopped and started.

// runParts is what Run gives the poll groups it starts; a reload starts and
// stops groups under it.
type runParts struct {
	ctx    context.Context
	wg     *sync.WaitGroup
	errs   chan error
	groups map[*groupRun]bool
}

// startGroup runs a poll group under Run; called with rt held.
func (c *Collector) startGroup(g *groupRun) {
	r := c.run
	if r.ctx.Err() != nil {
		return // shutting down
	}
	ctx, cancel := context.WithCancel(r.ctx)
	g.cancel, g.done = cancel, make(chan struct{})
	r.groups[g] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(g.done)
		if err := g.g.Run(ctx); err != nil {
			r.errs <- fmt.Errorf("poll group %s: %w", g.g.Name, err)
		}
	}()
}

// stopGroup ends a poll group and waits for its last tick; called with rt
// held by the reload (Run's shutdown does not take rt while waiting).
func (c *Collector) stopGroup(g *groupRun) {
	if g.cancel == nil {
		return
	}
	g.cancel()
	<-g.done
	delete(c.run.groups, g)
}

// restartNeeded says why a new config cannot be applied in place ("" when
// it can): the sections the whole collector is built on.
func restartNeeded(cur, next *config.Config) string {
	for _, s := range []struct {
		name string
		a, b any
	}{
		{"gateway", cur.Gateway, next.Gateway},
		{"buffer", cur.Buffer, next.Buffer},
		{"uplink", cur.Uplink, next.Uplink},
		{"audit", cur.Audit, next.Audit},
		{"status", cur.Status, next.Status},
		{"log", cur.Log, next.Log},
		{"I2C buses", i2cPart(cur), i2cPart(next)},
		{"HJ 212 factors", factors(cur), factors(next)},
		{"DTU buses", dtuBuses(cur), dtuBuses(next)},
		{"the Modbus server's map", modbusMap(cur), modbusMap(next)},
	} {
		if !reflect.DeepEqual(s.a, s.b) {
			return s.name + " changed"
		}
	}
	return ""
}

// i2cPart is what the collector opens for I2C at New.
func i2cPart(c *config.Config) []any {
	var out []any
	for _, b := range c.Buses {
		if b.Type == config.BusI2C {
			out = append(out, b)
			for _, d := range c.Devices {
				if d.Bus == b.Name {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

func factors(c *config.Config) map[string]string {
	m := map[string]string{}
	for _, p := range c.Points {
		if p.HJ212 != nil {
			m[p.Code] = p.HJ212.Factor
		}
	}
	return m
}

func same(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// apply runs next in place of the running config (Reload checked it: it
// validates and changes no held interlock). Order: new lines and devices;
// the engine takes the new points and interlocks (an unchanged interlock
// keeps its state, its inputs keep their index); new and changed groups on
// unchanged lines start before the groups they replace stop (their inputs
// are never unpolled); groups on a changed line stop before it is replaced
// (a serial port opens once); replaced lines close last.
func (c *Collector) apply(next *config.Config) error {
	began := time.Now()
	c.rt.Lock()
	defer c.rt.Unlock()
	cur := c.cfg
	lineOf := map[string]*modbus.Line{}
	var newLines, oldLines []*modbus.Line
	changedLine := map[string]bool{}
	for i := range next.Buses {
		b := &next.Buses[i]
		if !modbusBus(b.Type) {
			continue
		}
		if ob := cur.Bus(b.Name); ob != nil && same(ob, b) && c.lineOf[b.Name] != nil {
			lineOf[b.Name] = c.lineOf[b.Name]
			continue
		}
		// DTU buses are unchanged here (restartNeeded): no listener is needed.
		l, err := newModbusLine(b, lineOpts(b), nil, c.log)
		if err != nil {
			return c.refuse(err)
		}
		lineOf[b.Name], changedLine[b.Name] = l, true
		newLines = append(newLines, l)
	}
	for name, l := range c.lineOf {
		if lineOf[name] != l {
			oldLines = append(oldLines, l)
			changedLine[name] = true
		}
	}
	devices := map[string]*modbus.Device{}
	for i := range next.Devices {
		dv := &next.Devices[i]
		l := lineOf[dv.Bus]
		if l == nil {
			continue
		}
		if od := cur.Device(dv.Name); od != nil && same(od, dv) && !changedLine[dv.Bus] && c.devices[dv.Name] != nil {
			devices[dv.Name] = c.devices[dv.Name]
			continue
		}
		o := deviceOpts(dv)
		o.Logger = c.log
		devices[dv.Name] = modbus.NewDevice(l, o)
	}
	pts, ils, err := c.engineConf(next, devices)
	if err == nil {
		err = c.engine.Reconfigure(pts, ils)
	}
	if err != nil {
		for _, l := range newLines {
			l.Close()
		}
		return c.refuse(err)
	}
	groups, err := c.buildGroups(next, devices)
	if err != nil {
		// The engine has the new points; the groups stay as they were: the
		// config validated, so this is a bug worth saying loudly.
		c.log.Error("reload: poll groups could not be built; the running groups stay", "err", err)
		return c.refuse(err)
	}
	old := map[string]*groupRun{}
	for _, g := range c.groups {
		fp, err := g.fingerprint()
		if err != nil {
			c.log.Error("reload: a running poll group cannot be compared; the running groups stay", "err", err)
			return c.refuse(err)
		}
		old[fp] = g
	}
	var kept, started, stopped []string
	var final []*groupRun
	reused := map[*groupRun]bool{}
	for _, g := range groups {
		fp, err := g.fingerprint()
		if err != nil {
			c.log.Error("reload: a new poll group cannot be compared; the running groups stay", "err", err)
			return c.refuse(err)
		}
		if og := old[fp]; og != nil && !reused[og] {
			reused[og] = true
			final = append(final, og)
			kept = append(kept, og.g.Name)
			continue
		}
		final = append(final, g)
	}
	// Groups on a changed line stop first; the others overlap.
	for _, og := range c.groups {
		if !reused[og] && changedLine[og.bus] {
			c.stopGroup(og)
			stopped = append(stopped, og.g.Name)
		}
	}
	for _, g := range final {
		if !reused[g] {
			c.startGroup(g)
			started = append(started, g.g.Name)
		}
	}
	for _, og := range c.groups {
		if !reused[og] && !changedLine[og.bus] {
			c.stopGroup(og)
			stopped = append(stopped, og.g.Name)
		}
	}
	for _, l := range oldLines {
		l.Close()
	}
	var lines []*modbus.Line
	for i := range next.Buses {
		if l := lineOf[next.Buses[i].Name]; l != nil {
			lines = append(lines, l)
		}
	}
	c.cfg, c.groups, c.devices, c.lineOf, c.lines = next, final, devices, lineOf, lines
	slices.Sort(stopped)
	msg := fmt.Sprintf("config %s (sha256 %s) applied in place in %s: %d points, %d interlocks; poll groups kept %d, restarted or new %d (%s), stopped %d",
		next.File, short(next.SHA256), time.Since(began).Round(time.Millisecond), len(next.Points), len(next.Interlocks),
		len(kept), len(started), strings.Join(started, ", "), len(stopped))
	c.log.Info("config reloaded in place", "kept", kept, "started", started, "stopped", stopped, "sha256", next.SHA256)
	c.auditRecord("config", "loaded", next.File, "", msg)
	c.systemEvent(edge.StateConfigLoaded, "config", msg)
	return nil
}

// refuse reports a config that could not be applied; the running one stays.
func (c *Collector) refuse(err error) error {
	err = fmt.Errorf("cannot apply the config: %w", err)
	c.log.Error("config rejected; the running config stays", "err", err)
	c.auditRecord("config", "rejected", c.cfg.File, "", err.Error())
	c.systemEvent(edge.StateConfigRejected, "config", "config rejected, the running one stays: "+err.Error())
	return err
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// saveVersion keeps an accepted config in the data dir's history; a
// failure is logged, never fatal (the config runs all the same).
func (c *Collector) saveVersion(cfg *config.Config, who, how, note string) {
	if len(cfg.Raw) == 0 {
		return
	}
	v, err := configstore.New(cfg.Resolve(cfg.Buffer.Dir)).Save(cfg.Raw, cfg.SHA256, cfg.File, who, how, note, time.Now())
	if err != nil {
		c.log.Error("config history: cannot keep this version", "err", err)
		return
	}
	c.log.Info("config version kept", "n", v.N, "sha256", cfg.SHA256, "by", who, "how", how)
}
