package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// The binaries under test, built once in TestMain.
var ingestBin, collectorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgeingest-test-")
	if err != nil {
		panic(err)
	}
	ingestBin, collectorBin = filepath.Join(dir, "edgeingest"), filepath.Join(dir, "edgecollector")
	start := time.Now()
	for bin, pkg := range map[string]string{ingestBin: ".", collectorBin: "../edgecollector"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "built edgeingest and edgecollector in %s\n", time.Since(start).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "edgeingest gaps --postgres DSN"},
		{nil, 2, "both --mqtt and --postgres are required"},
		{[]string{"--mqtt", "tcp://127.0.0.1:1"}, 2, "both --mqtt and --postgres are required"},
		{[]string{"run"}, 2, `unknown command "run"`},
		{[]string{"--mqtt", "tcp://x:1", "--postgres", "postgres://x/y", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--mqtt", "tcp://x:1", "--postgres", "postgres://x/y", "--password-env", "EDGEINGEST_TEST_UNSET"}, 2, "EDGEINGEST_TEST_UNSET is not set"},
		{[]string{"--mqtt", "ssl://x:1", "--postgres", "postgres://x/y", "--cert", "c.pem"}, 2, "--cert and --key go together"},
		{[]string{"--mqtt", "tcp://x:1", "--postgres", "postgres://x/y", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"gaps"}, 2, "--postgres is required"},
		{[]string{"gaps", "--postgres", "postgres://x:1/y?connect_timeout=1"}, 2, "edgeingest gaps:"},
	}
	for _, c := range cases {
		var out, errOut strings.Builder
		code := run(context.Background(), c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String()+errOut.String(), c.want) {
			t.Errorf("edgeingest %v: exit %d, want %d with %q; printed:\n%s%s", c.args, code, c.code, c.want, out.String(), errOut.String())
		}
	}
}

// slave answers every holding-register read with changing values, for all
// startSlave is a slave whose holding registers change every 100 ms.
func startSlave(t *testing.T) string { return testpeer.StartMovingSlave(t, 512, 100*time.Millisecond) }

const enterprise = "91320500TEST"

// collectorConfig polls n holding registers every interval and sends them
// with platform acknowledgement on.
func collectorConfig(gw, slaveAddr, dataDir, mqttURL string, n int, interval time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {enterprise: %q, code: %s}\nbuses: [{name: plc, type: modbus-tcp, address: %q}]\n", enterprise, gw, slaveAddr)
	fmt.Fprintf(&b, "devices:\n  - {name: u1, bus: plc, unit: 1, timeout: 1s}\n")
	fmt.Fprintf(&b, "buffer: {dir: %q}\n", dataDir)
	fmt.Fprintf(&b, "uplink:\n  mqtt: {url: %q, heartbeat: 2s, reconnect_min: 200ms, reconnect_max: 2s, platform_ack: {enabled: true, timeout: 2s}}\n", mqttURL)
	fmt.Fprintf(&b, "log: {level: warn}\npoints:\n")
	for a := range n {
		fmt.Fprintf(&b, "  - {code: P%03d, kind: other, device: u1, interval: %s, source: {table: holding, address: %d}}\n", a, interval, a)
	}
	return b.String()
}

func startWorker(t *testing.T, name, mqttURL, dsn string) *testpeer.Proc {
	t.Helper()
	return testpeer.Start(t, ingestBin, "--mqtt", mqttURL, "--postgres", dsn, "--name", name, "--stats", "5s")
}

// subscribedCount is how many times a worker has subscribed (once per
// connection).
func subscribedCount(p *testpeer.Proc) int { return strings.Count(p.Output(), "msg=subscribed") }

func waitUntil(t *testing.T, what string, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (%s)", what, within, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type gwCount struct {
	stored, max int64
}

func counts(t *testing.T, pool *pgxpool.Pool) map[string]gwCount {
	t.Helper()
	out := map[string]gwCount{}
	rows, err := pool.Query(context.Background(), "SELECT gateway, count(*), max(seq) FROM messages GROUP BY gateway")
	if err != nil {
		// The first worker may not have migrated yet.
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var gw string
		var c gwCount
		rows.Scan(&gw, &c.stored, &c.max)
		out[gw] = c
	}
	return out
}

// eachGatewayAbove waits until every gateway stored more than from[gw]+n
// messages.
func eachGatewayAbove(t *testing.T, pool *pgxpool.Pool, gws []string, from map[string]gwCount, n int64, what string) map[string]gwCount {
	t.Helper()
	var now map[string]gwCount
	waitUntil(t, what, 60*time.Second, func() (bool, string) {
		now = counts(t, pool)
		for _, gw := range gws {
			if now[gw].stored < from[gw].stored+n {
				return false, fmt.Sprintf("%s has %d messages, waiting for %d", gw, now[gw].stored, from[gw].stored+n)
			}
		}
		return true, ""
	})
	return now
}

// The full-size fleet is a bench command:
//
//	go test -run TestFleet -timeout 20m ./cmd/edgeingest -args -fleet.gateways 40 -fleet.kills 6
var (
	fleetGateways = flag.Int("fleet.gateways", 8, "TestFleet: collector processes")
	fleetKills    = flag.Int("fleet.kills", 2, "TestFleet: workers killed with SIGKILL and restarted, one after another")
)

// TestFleet is the end-to-end proof with the real binaries: PostgreSQL 15,
// Mosquitto, 8 collectors with platform_ack on and 3 ingest workers that
// start at once. Workers are killed with SIGKILL at random moments and
// restarted (two, one after the other), then the
// broker is stopped (SIGTERM, persistence on) and started again, then
// PostgreSQL is stopped and started again. At the end every gateway's seqs
// 1..max are stored exactly once, with their readings once, and
// `edgeingest gaps` reports none.
func TestFleet(t *testing.T) {
	testpeer.Need(t, "mosquitto")
	began := time.Now()
	pg := testpeer.PostgreSQL(t)
	broker := testpeer.Mosquitto(t, true)
	slaveAddr := startSlave(t)
	pool, err := pgxpool.New(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// Three workers at once: the migrations run under the advisory lock.
	names := []string{"w1", "w2", "w3"}
	workers := make([]*testpeer.Proc, len(names))
	for i, n := range names {
		workers[i] = startWorker(t, n, broker.URL(), pg.DSN())
	}
	for _, w := range workers {
		w.WaitOutput(t, "msg=subscribed", 60*time.Second)
	}

	gateways := *fleetGateways
	var gws []string
	var collectors []*testpeer.Proc
	for g := 1; g <= gateways; g++ {
		gw := fmt.Sprintf("GW-%02d", g)
		gws = append(gws, gw)
		dir := t.TempDir()
		cfg := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(cfg, []byte(collectorConfig(gw, slaveAddr, filepath.Join(dir, "data"), broker.URL(), 10, 200*time.Millisecond)), 0o644); err != nil {
			t.Fatal(err)
		}
		collectors = append(collectors, testpeer.Start(t, collectorBin, "run", "-c", cfg))
	}
	c2 := eachGatewayAbove(t, pool, gws, nil, 15, "every gateway stores messages")
	t.Logf("%s: all %d gateways storing", time.Since(began).Round(time.Second), *fleetGateways)

	// Workers killed with SIGKILL at random moments, one after another,
	// each restarted under its name once the others carried on.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 21))
	for k := range *fleetKills {
		i := k % len(workers)
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		workers[i].Signal(syscall.SIGKILL)
		workers[i].Wait(10 * time.Second)
		c1 := eachGatewayAbove(t, pool, gws, c2, 10, fmt.Sprintf("storing goes on without %s", names[i]))
		workers[i] = startWorker(t, names[i], broker.URL(), pg.DSN())
		workers[i].WaitOutput(t, "msg=subscribed", 30*time.Second)
		c2 = eachGatewayAbove(t, pool, gws, c1, 10, fmt.Sprintf("storing goes on after %s restarted", names[i]))
		t.Logf("%s: %s killed with SIGKILL and restarted", time.Since(began).Round(time.Second), names[i])
	}
	t.Logf("%s: stopping the broker (SIGTERM)", time.Since(began).Round(time.Second))

	subs := make([]int, len(workers))
	for i, w := range workers {
		subs[i] = subscribedCount(w)
	}
	broker.Stop()
	time.Sleep(3 * time.Second)
	broker.Start()
	waitUntil(t, "every worker subscribes again after the broker restart", 60*time.Second, func() (bool, string) {
		for i, w := range workers {
			if subscribedCount(w) <= subs[i] {
				return false, names[i] + " has not"
			}
		}
		return true, ""
	})
	c3 := eachGatewayAbove(t, pool, gws, c2, 25, "storing goes on after the broker restart")
	t.Logf("%s: broker back, every worker subscribed again; stopping PostgreSQL", time.Since(began).Round(time.Second))

	pg.Stop()
	time.Sleep(3 * time.Second)
	pg.Start()
	c3 = eachGatewayAbove(t, pool, gws, c3, 25, "storing goes on after the database restart")
	retried := 0
	for _, w := range workers {
		if strings.Contains(w.Output(), "cannot store a batch; retrying") {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no worker noticed the database outage: the test proves nothing")
	}
	t.Logf("%s: PostgreSQL back; %d workers retried their batch meanwhile", time.Since(began).Round(time.Second), retried)

	// Everything published up to now arrives (resends after the faults are
	// absorbed by the primary key) while the collectors keep running.
	waitUntil(t, "no gaps while the collectors run", 90*time.Second, func() (bool, string) {
		now := counts(t, pool)
		for _, gw := range gws {
			if now[gw].max < c3[gw].max || now[gw].stored != now[gw].max {
				return false, fmt.Sprintf("%s: %d stored, max seq %d", gw, now[gw].stored, now[gw].max)
			}
		}
		return true, ""
	})
	// The acknowledgements work: each collector's backlog comes down to
	// what is in flight (without acks it would hold every message).
	for i, gw := range gws {
		cfg := collectors[i].Cmd.Args[3]
		waitUntil(t, gw+"'s backlog acknowledged", 30*time.Second, func() (bool, string) {
			out, err := exec.Command(collectorBin, "status", "-c", cfg).Output()
			var st struct {
				Uplinks map[string]struct {
					Backlog int64 `json:"backlog"`
					Acked   int64 `json:"acked"`
				} `json:"uplinks"`
			}
			if err != nil || json.Unmarshal(out, &st) != nil {
				return false, fmt.Sprintf("status: %v %s", err, out)
			}
			m := st.Uplinks["mqtt"]
			return m.Backlog <= 10 && m.Acked >= c3[gw].max-10, fmt.Sprintf("backlog %d, acked %d", m.Backlog, m.Acked)
		})
	}
	for _, c := range collectors {
		if err := c.Stop(); err != nil {
			t.Errorf("collector did not stop cleanly: %v", err)
		}
	}
	// Each stopped collector publishes its offline state; once every
	// gateway row says offline, the last messages have been through.
	waitUntil(t, "every gateway offline after its collector stopped", 60*time.Second, func() (bool, string) {
		var offline int
		pool.QueryRow(context.Background(), "SELECT count(*) FROM gateways WHERE online = false").Scan(&offline)
		return offline == gateways, fmt.Sprintf("%d offline", offline)
	})
	var final map[string]gwCount
	waitUntil(t, "every seq stored once and no gap", 60*time.Second, func() (bool, string) {
		final = counts(t, pool)
		for _, gw := range gws {
			if final[gw].stored != final[gw].max {
				return false, fmt.Sprintf("%s: %d stored, max seq %d", gw, final[gw].stored, final[gw].max)
			}
		}
		return true, ""
	})

	out, err := exec.Command(ingestBin, "gaps", "--postgres", pg.DSN()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("no gaps: %d gateways", gateways)) {
		t.Fatalf("edgeingest gaps: %v\n%s", err, out)
	}
	ctx := context.Background()
	// A duplicate is acknowledged too and stored once; an invalid message
	// is rejected and recorded, and the workers carry on.
	var body, kind string
	if err := pool.QueryRow(ctx, "SELECT body::text, kind FROM messages WHERE gateway = 'GW-01' AND seq = 1").Scan(&body, &kind); err != nil {
		t.Fatal(err)
	}
	acks := make(chan string, 16)
	pc := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL()).SetClientID("platform-check"))
	if tok := pc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("check client: %v", tok.Error())
	}
	defer pc.Disconnect(100)
	if tok := pc.Subscribe("safety/"+enterprise+"/GW-01/ack", 1, func(_ paho.Client, m paho.Message) { acks <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe ack: %v", tok.Error())
	}
	pc.Publish("safety/"+enterprise+"/GW-01/rt", 1, false, `{"v":1,"enterprise":"`+enterprise+`","gateway":"GW-01","seq":5}`).Wait()
	pc.Publish("safety/"+enterprise+"/GW-01/"+kind, 1, false, body).Wait()
	select {
	case a := <-acks:
		if a != `{"seqs":[1]}` {
			t.Fatalf("the duplicate of seq 1 was acknowledged as %s", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a duplicate of a stored message was not acknowledged")
	}
	waitUntil(t, "the invalid message recorded", 20*time.Second, func() (bool, string) {
		var n int
		pool.QueryRow(ctx, "SELECT count(*) FROM rejected WHERE topic = 'safety/"+enterprise+"/GW-01/rt'").Scan(&n)
		return n == 1, fmt.Sprintf("%d rejected", n)
	})
	if c := counts(t, pool)["GW-01"]; c != final["GW-01"] {
		t.Fatalf("GW-01 went from %+v to %+v with a duplicate", final["GW-01"], c)
	}

	var readings, inBodies, workersUsed, rejected, resends int64
	pool.QueryRow(ctx, "SELECT count(*) FROM readings").Scan(&readings)
	pool.QueryRow(ctx, "SELECT coalesce(sum(jsonb_array_length(body->'readings')), 0) FROM messages WHERE kind = 'rt'").Scan(&inBodies)
	pool.QueryRow(ctx, "SELECT count(DISTINCT worker) FROM messages").Scan(&workersUsed)
	pool.QueryRow(ctx, "SELECT count(*) FROM rejected").Scan(&rejected)
	pool.QueryRow(ctx, "SELECT count(*) FROM messages WHERE resend").Scan(&resends)
	if readings != inBodies || readings == 0 {
		t.Errorf("%d reading rows for %d readings in the stored messages: each must be stored once", readings, inBodies)
	}
	if workersUsed != 3 {
		t.Errorf("messages were stored by %d workers, want all 3 (the shared subscription splits the load)", workersUsed)
	}
	var tracked int
	pool.QueryRow(ctx, `SELECT count(*) FROM gateways WHERE last_heartbeat IS NOT NULL AND reported_last_seq > 0
		AND heartbeat ? 'uptime_s' AND last_seq >= reported_last_seq AND online = false
		AND jsonb_array_length(meta->'points') = 10`).Scan(&tracked)
	if tracked != gateways {
		t.Errorf("%d of %d gateways rows carry a heartbeat, its last_seq, the point catalogue and the Last Will's offline state", tracked, gateways)
	}
	if rejected != 1 {
		t.Errorf("%d messages rejected, want only the invalid one the test sent", rejected)
	}
	var total int64
	for _, gw := range gws {
		total += final[gw].max
	}

	var dups []string
	var mu sync.Mutex
	for i, w := range workers {
		w.Stop()
		lines := testpeer.Lines(w.Output())
		for j := len(lines) - 1; j >= 0; j-- {
			if strings.Contains(lines[j], "msg=stopped") {
				mu.Lock()
				dups = append(dups, names[i]+": "+lines[j][strings.Index(lines[j], "received="):])
				mu.Unlock()
				break
			}
		}
	}
	t.Logf("%s: %d gateways, %d messages (seqs 1..max each, exactly once), %d readings, %d stored from a resend; gaps says:\n%s  workers (since their last start): %s",
		time.Since(began).Round(time.Second), gateways, total, readings, resends, out, strings.Join(dups, "; "))
}
