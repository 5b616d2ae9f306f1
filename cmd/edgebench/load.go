package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

var profile, memProfile string

type result struct {
	cpuPct, rssMB, reqPerS, readingsPerS float64
}

func load(args []string) int {
	flag := flag.NewFlagSet("load", flag.ExitOnError)
	collector := flag.String("collector", "", "path of the edgecollector binary to measure (required)")
	seconds := flag.Int("seconds", 60, "measured seconds per run (after a 5 s warm-up)")
	runs := flag.Int("runs", 3, "runs; the median is reported")
	units := flag.Int("units", 4, "unit ids")
	regs := flag.Int("registers", 250, "uint16 holding registers per unit")
	interval := flag.Duration("interval", 100*time.Millisecond, "poll interval")
	broker := flag.String("broker", "", "MQTT broker URL (default: start mosquitto on a free port)")
	perPoint := flag.Bool("per-point", false, "one request per point (max_registers: 1), the baseline")
	compare := flag.String("compare", "", "a second edgecollector binary run at the same time on the same load (each has its own slave connection, buffer and topic), for an A/B ratio measured in the same run")
	flag.StringVar(&profile, "cpuprofile", "", "have the collector write a CPU profile here (last run)")
	flag.StringVar(&memProfile, "memprofile", "", "have the collector write a heap profile here at exit (last run)")
	flag.Parse(args)
	if *collector == "" {
		fmt.Fprintln(os.Stderr, "usage: edgebench load -collector PATH [-seconds 60] [-runs 3]")
		return 2
	}
	dir, _ := os.MkdirTemp("", "loadbench-")
	defer os.RemoveAll(dir)
	if *broker == "" {
		port := freePort()
		conf := filepath.Join(dir, "mosquitto.conf")
		os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)), 0o644)
		m, err := start("mosquitto", "-c", conf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start mosquitto:", err)
			return 1
		}
		defer m.stop()
		*broker = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Printf("load: %d units x %d uint16 holding registers every %s (%.0f points/s), durable buffer on, every reading published to %s\n",
		*units, *regs, *interval, float64(*units**regs)/interval.Seconds(), *broker)
	bins := []string{*collector}
	if *compare != "" {
		bins = append(bins, *compare)
	}
	rs := make([][]result, len(bins))
	for run := 1; run <= *runs; run++ {
		r, err := once(bins, *broker, dir, run, *seconds, *units, *regs, *interval, *perPoint)
		if err != nil {
			fmt.Fprintln(os.Stderr, "run", run, ":", err)
			return 1
		}
		for i := range bins {
			fmt.Printf("run %d: %s CPU %.2f %% of one core, peak RSS %.1f MB, %.1f Modbus requests/s, %.0f readings/s published\n",
				run, label(bins, i), r[i].cpuPct, r[i].rssMB, r[i].reqPerS, r[i].readingsPerS)
			rs[i] = append(rs[i], r[i])
		}
		if len(bins) == 2 {
			fmt.Printf("run %d: CPU ratio collector/compare %.3f\n", run, r[0].cpuPct/r[1].cpuPct)
		}
	}
	med := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	for i := range bins {
		fmt.Printf("median of %d runs: %s CPU %.2f %% of one core, peak RSS %.1f MB, %.1f requests/s, %.0f readings/s\n",
			len(rs[i]), label(bins, i), med(rs[i], func(r result) float64 { return r.cpuPct }), med(rs[i], func(r result) float64 { return r.rssMB }),
			med(rs[i], func(r result) float64 { return r.reqPerS }), med(rs[i], func(r result) float64 { return r.readingsPerS }))
	}
	if len(bins) == 2 {
		ratios := make([]result, len(rs[0]))
		for k := range ratios {
			ratios[k].cpuPct = rs[0][k].cpuPct / rs[1][k].cpuPct
		}
		fmt.Printf("median CPU ratio collector/compare over %d runs: %.3f\n", len(ratios), med(ratios, func(r result) float64 { return r.cpuPct }))
	}
	fmt.Println("reference (issue 3: Telegraf modbus input, same load, publishing to Mosquitto, no durable buffer): 3.5 % of one core, 34 MB peak RSS")
	return 0
}

func label(bins []string, i int) string {
	if i == 0 {
		return "collector"
	}
	return "compare"
}

// once runs one measurement: a slave process and, at the same time, one
// collector per binary, each with its own connection, buffer and topic.
func once(bins []string, broker, dir string, run, seconds, units, regs int, interval time.Duration, perPoint bool) ([]result, error) {
	self, _ := os.Executable()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	sl, err := start(self, "slave", "-addr", addr)
	if err != nil {
		return nil, err
	}
	defer sl.stop()
	type inst struct {
		c        *proc
		readings atomic.Int64
		t0, r0   int64
	}
	insts := make([]*inst, len(bins))
	order := make([]int, len(bins))
	for k := range order {
		order[k] = k
		if run%2 == 0 {
			// The collector started first measured about 10 % lower than an
			// identical one started second: alternate who starts first.
			order[k] = len(bins) - 1 - k
		}
	}
	for _, i := range order {
		bin := bins[i]
		gw := fmt.Sprintf("GW%d-%d", run, i)
		data := filepath.Join(dir, fmt.Sprintf("data-%d-%d", run, i))
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "gateway: {enterprise: BENCH, code: %s}\nbuses: [{name: slave, type: modbus-tcp, address: %q}]\ndevices:\n", gw, addr)
		maxRegs := ""
		if perPoint {
			maxRegs = ", max_registers: 1, max_gap: 0"
		}
		for u := 1; u <= units; u++ {
			fmt.Fprintf(&cfg, "  - {name: u%d, bus: slave, unit: %d, timeout: 1s%s}\n", u, u, maxRegs)
		}
		fmt.Fprintf(&cfg, "buffer: {dir: %q}\nuplink: {mqtt: {url: %q}}\nlog: {level: warn}\npoints:\n", data, broker)
		for u := 1; u <= units; u++ {
			for a := 0; a < regs; a++ {
				fmt.Fprintf(&cfg, "  - {code: U%d-R%03d, kind: other, device: u%d, interval: %s, source: {table: holding, address: %d}}\n", u, a, u, interval, a)
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("collector-%d-%d.yaml", run, i))
		os.WriteFile(path, []byte(cfg.String()), 0o644)

		in := &inst{}
		insts[i] = in
		o := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("loadbench-sub-%d-%d", run, i))
		sub := paho.NewClient(o)
		if t := sub.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
			return nil, fmt.Errorf("subscriber: %v", t.Error())
		}
		defer sub.Disconnect(100)
		sub.Subscribe(fmt.Sprintf("safety/BENCH/%s/rt", gw), 1, func(_ paho.Client, m paho.Message) {
			var body struct {
				Readings []json.RawMessage `json:"readings"`
			}
			json.Unmarshal(m.Payload(), &body)
			in.readings.Add(int64(len(body.Readings)))
		}).Wait()

		cargs := []string{"run", "-c", path}
		if profile != "" && i == 0 {
			cargs = append(cargs, "-cpuprofile", profile)
		}
		if memProfile != "" && i == 0 {
			cargs = append(cargs, "-memprofile", memProfile)
		}
		c, err := start(bin, cargs...)
		if err != nil {
			return nil, err
		}
		defer c.stop()
		in.c = c
	}
	time.Sleep(5 * time.Second) // warm-up
	for _, in := range insts {
		t0, err := cpuTicks(in.c.cmd.Process.Pid)
		if err != nil {
			return nil, fmt.Errorf("collector died: %v\n%s", err, strings.Join(in.c.lines, "\n"))
		}
		in.t0, in.r0 = t0, in.readings.Load()
	}
	req0 := reqs(sl)
	w0 := time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	el := time.Since(w0).Seconds()
	reqPerS := float64(reqs(sl)-req0) / el / float64(len(insts))
	var out []result
	for _, in := range insts {
		pid := in.c.cmd.Process.Pid
		t1, err := cpuTicks(pid)
		if err != nil {
			return nil, fmt.Errorf("collector died: %v", err)
		}
		out = append(out, result{
			cpuPct:       float64(t1-in.t0) / 100 / el * 100,
			rssMB:        statusKB(pid, "VmHWM") / 1024,
			reqPerS:      reqPerS,
			readingsPerS: float64(in.readings.Load()-in.r0) / el,
		})
	}
	return out, nil
}

func reqs(p *proc) int64 {
	n, _ := strconv.ParseInt(strings.TrimPrefix(p.last("requests "), "requests "), 10, 64)
	return n
}
