package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/edge"
)

// backlogMessages builds n readings as rt messages of the default size
// (a tick's readings split at 65,536 bytes, as the poll groups do).
func backlogMessages(n int, created time.Time) []*edge.Message {
	rs := make([]edge.Reading, n)
	for i := range rs {
		rs[i] = edge.Reading{Point: fmt.Sprintf("PT-%04d", i%1000), TS: created, Value: edge.Num(float64(i%997) + 0.25), Unit: "kPa"}
	}
	return edge.SplitReadings(rs, created, 65536)
}

// prefill writes a backlog of n readings into a buffer at dir, none of them
// acknowledged; it returns the number of messages.
func prefill(dir string, n int) (int, error) {
	s, err := buffer.OpenBadger(context.Background(), buffer.BadgerOpts{Dir: dir, Opts: buffer.Opts{Uplinks: []string{"mqtt"}}})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	msgs := backlogMessages(n, time.Now())
	for i := 0; i < len(msgs); i += 64 {
		if err := s.Append(context.Background(), msgs[i:min(i+64, len(msgs))]...); err != nil {
			return 0, err
		}
	}
	return len(msgs), nil
}

// appendRate appends 200-reading messages, one synced append call each,
// for d, and returns readings/s.
func appendRate(dir string, d time.Duration) (float64, error) {
	s, err := buffer.OpenBadger(context.Background(), buffer.BadgerOpts{Dir: dir, Opts: buffer.Opts{Uplinks: []string{"mqtt"}}})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	tmpl := backlogMessages(200, time.Now())[0]
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		m := *tmpl
		if err := s.Append(context.Background(), &m); err != nil {
			return 0, err
		}
		n += len(m.Readings)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func bufferBench(args []string) int {
	fs := flag.NewFlagSet("buffer", flag.ExitOnError)
	collector := fs.String("collector", "", "path of the edgecollector binary (required)")
	readings := fs.Int("readings", 1000000, "backlog size in readings")
	runs := fs.Int("runs", 3, "runs; the median is reported")
	appendFor := fs.Duration("append-for", 5*time.Second, "how long each append measurement runs")
	fs.Parse(args)
	if *collector == "" {
		fmt.Fprintln(os.Stderr, "usage: edgebench buffer -collector PATH [-readings 1000000] [-runs 3]")
		return 2
	}
	dir, _ := os.MkdirTemp("", "edgebench-buffer-")
	defer os.RemoveAll(dir)
	url, broker, err := startBroker(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer broker.stop()
	var apps, drains, rsss []float64
	for run := 1; run <= *runs; run++ {
		a, err := appendRate(filepath.Join(dir, fmt.Sprintf("append-%d", run)), *appendFor)
		if err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			return 1
		}
		d, rss, msgs, err := drain(*collector, url, dir, run, *readings)
		if err != nil {
			fmt.Fprintln(os.Stderr, "drain:", err)
			return 1
		}
		fmt.Printf("run %d: append %.0f readings/s (200 per synced append); drain of %d readings (%d messages) %.0f readings/s; collector peak RSS %.1f MB\n",
			run, a, *readings, msgs, d, rss)
		apps, drains, rsss = append(apps, a), append(drains, d), append(rsss, rss)
	}
	fmt.Printf("median of %d runs: append %.0f readings/s, drain %.0f readings/s, peak RSS %.1f MB with a %d-reading backlog\n",
		*runs, median(apps), median(drains), median(rsss), *readings)
	fmt.Println("targets (issue 5): append >= 100000 readings/s, drain >= 50000 readings/s, peak RSS <= 96 MB")
	return 0
}

// drain starts the collector on a prefilled backlog and times until a
// subscriber has every reading.
func drain(collector, url, dir string, run, readings int) (rate, rssMB float64, msgs int, err error) {
	data := filepath.Join(dir, fmt.Sprintf("backlog-%d", run))
	if msgs, err = prefill(data, readings); err != nil {
		return
	}
	gw := fmt.Sprintf("DRAIN%d", run)
	cfg := filepath.Join(dir, fmt.Sprintf("drain-%d.yaml", run))
	os.WriteFile(cfg, []byte(fmt.Sprintf("gateway: {enterprise: BENCH, code: %s}\nbuffer: {dir: %q}\nuplink: {mqtt: {url: %q}}\nlog: {level: warn}\n", gw, data, url)), 0o644)
	k, err := newCounter(url, "safety/BENCH/"+gw+"/rt", "edgebench-drain-"+gw)
	if err != nil {
		return
	}
	defer k.close()
	c, err := start(collector, "run", "-c", cfg)
	if err != nil {
		return
	}
	defer c.stop()
	start := time.Now()
	pid := c.cmd.Process.Pid
	var peak float64
	for k.readings.Load() < int64(readings) {
		peak = max(peak, statusKB(pid, "VmHWM")/1024)
		if time.Since(start) > 10*time.Minute {
			return 0, 0, msgs, fmt.Errorf("drain incomplete after 10 min: %d of %d readings", k.readings.Load(), readings)
		}
		time.Sleep(20 * time.Millisecond)
	}
	el := time.Duration(k.lastAt.Load() - start.UnixNano())
	peak = max(peak, statusKB(pid, "VmHWM")/1024)
	return float64(readings) / el.Seconds(), peak, msgs, nil
}
