package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// benchBody is a valid rt message with n readings.
func benchBody(b *bytes.Buffer, gw string, seq int64, n int, at time.Time) []byte {
	b.Reset()
	ts := at.Format("2006-01-02T15:04:05.000Z07:00")
	fmt.Fprintf(b, `{"v":1,"enterprise":%q,"gateway":%q,"seq":%d,"resend":false,"sent_at":%q,"readings":[`, enterprise, gw, seq, ts)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `{"point":"GT-%04d","ts":%q,"value":%d.25,"unit":"%%LEL","quality":"good","alarm":null}`, i, ts, (seq+int64(i))%100)
	}
	b.WriteString("]}")
	return bytes.Clone(b.Bytes())
}

// cpuSeconds is the user+system CPU time a process has used.
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// machineCPU is the busy and total jiffies of all cores (/proc/stat).
func machineCPU() (busy, total float64) {
	raw, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(raw), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// BenchmarkIngest measures what 1 and 3 workers store: each op publishes
// 1,000 rt messages of 100 readings (50 gateways, QoS 1) to Mosquitto as
// fast as it takes them and ends when PostgreSQL holds them all. Run:
//
//	go test -run '^$' -bench Ingest -benchtime 5x ./cmd/edgeingest
func BenchmarkIngest(b *testing.B) {
	for _, workers := range []int{1, 3} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) { benchIngest(b, workers) })
	}
}

func benchIngest(b *testing.B, workers int) {
	const (
		gateways    = 50
		perOp       = 1000
		perMessage  = 100
		maxInflight = 500
	)
	testpeer.Need(b, "mosquitto")
	pg := testpeer.PostgreSQL(b)
	broker := testpeer.Mosquitto(b, false)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var procs []*testpeer.Proc
	for i := range workers {
		p := testpeer.Start(b, ingestBin, "--mqtt", broker.URL(), "--postgres", pg.DSN(), "--name", fmt.Sprintf("bench-w%d", i+1), "--stats", "0")
		procs = append(procs, p)
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL()).SetClientID("bench-publisher").SetOrderMatters(false))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	waitStored := func(want int64, within time.Duration) {
		deadline := time.Now().Add(within)
		for {
			var n int64
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n); err == nil && n >= want {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d messages not stored within %s", want, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var buf bytes.Buffer
	seq := make([]int64, gateways)
	publish := func(n int) {
		toks := make(chan paho.Token, maxInflight)
		done := make(chan struct{})
		go func() {
			for t := range toks {
				t.Wait()
			}
			close(done)
		}()
		now := time.Now()
		for i := range n {
			g := i % gateways
			seq[g]++
			gw := fmt.Sprintf("GW-%03d", g)
			toks <- pub.Publish("safety/"+enterprise+"/"+gw+"/rt", 1, false, benchBody(&buf, gw, seq[g], perMessage, now))
		}
		close(toks)
		<-done
	}
	// Warm-up: every worker subscribed, two messages per gateway stored.
	deadline := time.Now().Add(60 * time.Second)
	for _, p := range procs {
		p.WaitOutput(b, "msg=subscribed", 60*time.Second)
	}
	publish(gateways * 2)
	waitStored(gateways*2, time.Until(deadline))
	stored := int64(gateways * 2)
	cpu0 := 0.0
	for _, p := range procs {
		cpu0 += cpuSeconds(p.Cmd.Process.Pid)
	}
	busy0, total0 := machineCPU()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		publish(perOp)
		stored += perOp
		waitStored(stored, 5*time.Minute)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := -cpu0
	for _, p := range procs {
		cpu += cpuSeconds(p.Cmd.Process.Pid)
	}
	busy1, total1 := machineCPU()
	msgs := float64(b.N * perOp)
	b.ReportMetric(msgs/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(msgs*perMessage/elapsed.Seconds(), "readings/s")
	b.ReportMetric(100*cpu/elapsed.Seconds(), "worker-cpu-%")
	// Everything on the machine (PostgreSQL, Mosquitto, the publisher and
	// whatever else runs), in % of all cores: near 100 the machine is the
	// limit, not the workers.
	b.ReportMetric(100*(busy1-busy0)/(total1-total0), "machine-busy-%")
	var readings int64
	pool.QueryRow(ctx, "SELECT count(*) FROM readings").Scan(&readings)
	if readings != stored*perMessage {
		b.Fatalf("%d readings stored, want %d", readings, stored*perMessage)
	}
}
