package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openPool(t *testing.T, pg *testpeer.Postgres) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// rtMessage is a valid rt message of gateway gw with n readings.
func rtMessage(ent, gw string, seq int64, n int, resend bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"v":1,"enterprise":%q,"gateway":%q,"seq":%d,"resend":%v,"sent_at":"2026-11-23T16:30:15.208+08:00","readings":[`, ent, gw, seq, resend)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"point":"P%03d","ts":"2026-11-23T16:30:%02d.%03d+08:00","value":%d.5,"unit":"m","quality":"good","alarm":null}`, i, seq%60, i, seq)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func dropEvent(ent, gw string, seq int64, state string, ranges string) []byte {
	count := ""
	if state == "buffer_dropped" {
		count = `,"count":1`
	}
	return fmt.Appendf(nil, `{"v":1,"enterprise":%q,"gateway":%q,"seq":%d,"resend":false,"sent_at":"2026-11-23T16:30:15.208+08:00","events":[`+
		`{"id":"%s-%d-0","type":"system","state":%q,"subject":"buffer","ts":"2026-11-23T16:30:15.100+08:00","ranges":%s%s}]}`,
		ent, gw, seq, gw, seq, state, ranges, count)
}

// TestStoreAndGaps runs against a real PostgreSQL 15: eight migrations at
// once under the advisory lock, a batch with duplicates (acknowledged too),
// two workers writing overlapping batches of the same gateways at once
// (no deadlock, each seq once), and the gap report with named ranges.
func TestStoreAndGaps(t *testing.T) {
	pg := testpeer.PostgreSQL(t)
	pool := openPool(t, pg)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			p, err := pgxpool.New(ctx, pg.DSN())
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			errs <- Migrate(ctx, p, quiet())
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent migration: %v", err)
		}
	}
	var versions int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions != len(migrations) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", versions, err, len(migrations))
	}

	v := newValidator(t)
	decode := func(leaf string, body []byte) any {
		t.Helper()
		tp := Topic{"E1", "", leaf}
		tp.Gateway = strings.Split(strings.Split(string(body), `"gateway":"`)[1], `"`)[0]
		d, err := v.Decode(tp, body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	batch := func(bodies ...[]byte) Batch {
		var b Batch
		for _, body := range bodies {
			switch d := decode(leafOf(body), body).(type) {
			case *Message:
				b.Messages = append(b.Messages, d)
			case *State:
				b.States = append(b.States, d)
			}
		}
		return b
	}
	s := &store{pool: pool, worker: "w1"}
	st, err := s.Write(ctx, batch(rtMessage("E1", "G1", 1, 3, false), rtMessage("E1", "G1", 2, 3, false), rtMessage("E1", "G1", 2, 3, true)))
	if err != nil {
		t.Fatal(err)
	}
	if st.New != 2 || st.Dups != 1 || st.Readings != 6 || fmt.Sprint(st.Acks[gwKey{"E1", "G1"}]) != "[1 2]" {
		t.Fatalf("first batch: %+v", st)
	}
	st, err = s.Write(ctx, batch(rtMessage("E1", "G1", 2, 3, true), rtMessage("E1", "G1", 3, 3, false)))
	if err != nil {
		t.Fatal(err)
	}
	if st.New != 1 || st.Dups != 1 || st.Readings != 3 || fmt.Sprint(st.Acks[gwKey{"E1", "G1"}]) != "[2 3]" {
		t.Fatalf("a duplicate of a stored seq is acknowledged again and its readings not stored twice: %+v", st)
	}

	// Two workers, the same seqs of four gateways in opposite orders.
	w2 := &store{pool: pool, worker: "w2"}
	var a, b [][]byte
	for seq := int64(10); seq < 60; seq++ {
		for _, gw := range []string{"G1", "G2", "G3", "G4"} {
			a = append(a, rtMessage("E1", gw, seq, 20, false))
			b = append([][]byte{rtMessage("E1", gw, seq, 20, true)}, b...)
		}
	}
	var sa, sb Stored
	var ea, eb error
	wg.Go(func() { sa, ea = s.Write(ctx, batch(a...)) })
	wg.Go(func() { sb, eb = w2.Write(ctx, batch(b...)) })
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatalf("concurrent writers: %v / %v", ea, eb)
	}
	if sa.New+sb.New != 200 || sa.Dups+sb.Dups != 200 || sa.Readings+sb.Readings != 200*20 {
		t.Fatalf("concurrent writers stored %d+%d new, %d+%d dups, %d+%d readings; want 200 new, 200 dups, 4000 readings",
			sa.New, sb.New, sa.Dups, sb.Dups, sa.Readings, sb.Readings)
	}
	var readings int
	pool.QueryRow(ctx, "SELECT count(*) FROM readings").Scan(&readings)
	if readings != 9+4000 {
		t.Fatalf("%d readings stored, want %d", readings, 9+4000)
	}

	// Status and the Last Will: online, then offline.
	status := strings.ReplaceAll(string(golden(t, "status.json")), "91320500MA1W2X3Y4Z", "E1")
	status = strings.ReplaceAll(status, "GW01", "G1")
	if _, err := s.Write(ctx, batch([]byte(status))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, batch([]byte(`{"v":1,"enterprise":"E1","gateway":"G1","state":"offline"}`))); err != nil {
		t.Fatal(err)
	}
	var online bool
	var lastSeq, reported int64
	if err := pool.QueryRow(ctx, "SELECT online, last_seq, reported_last_seq FROM gateways WHERE gateway = 'G1'").Scan(&online, &lastSeq, &reported); err != nil {
		t.Fatal(err)
	}
	if online || lastSeq != 59 || reported != 2001 {
		t.Fatalf("gateway G1: online %v last_seq %d reported %d; want offline, 59, 2001", online, lastSeq, reported)
	}

	// Gaps: G1 has 1-3 and 10-59: 4-9 missing. Name 4-6 as dropped and 8
	// as not issued: 7 and 9 stay gaps. G2-G4 miss 1-9.
	if _, err := s.Write(ctx, batch(dropEvent("E1", "G1", 60, "buffer_dropped", "[[4,6]]"), dropEvent("E1", "G1", 61, "buffer_recreated", "[[8,8]]"))); err != nil {
		t.Fatal(err)
	}
	gs, err := Gaps(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	n := PrintGaps(&out, gs)
	t.Logf("gaps:\n%s", out.String())
	if n != 5 || len(gs) != 4 {
		t.Fatalf("want 5 gaps in 4 gateways, got %d in %d:\n%s", n, len(gs), out.String())
	}
	g1 := gs[0]
	if g1.Gateway != "G1" || fmt.Sprint(g1.Missing) != "[7 9]" || fmt.Sprint(g1.Named) != "[4-6 8]" || g1.Last != 61 || g1.Stored != 55 {
		t.Fatalf("G1: %+v", g1)
	}
	for _, want := range []string{"E1/G1: seqs 1-61, 55 stored, 4 named lost or not issued, 2 missing", "  MISSING 7 (1)", "  named   4-6 (3)", "E1/G2: seqs 1-59", "  MISSING 1-9 (9)", "5 gaps in 4 of 4 gateways"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func leafOf(body []byte) string {
	switch {
	case bytes.Contains(body, []byte(`"readings"`)):
		return "rt"
	case bytes.Contains(body, []byte(`"events"`)):
		return "event"
	case bytes.Contains(body, []byte(`"points"`)):
		return "meta"
	}
	return "status"
}

// TestPoisonMessage: a message PostgreSQL refuses (a NUL character, which
// jsonb and text cannot hold, though the JSON Schema allows it) must not
// hold back the messages batched with it, nor stop the worker: it is
// rejected and recorded, the others are stored and acknowledged.
func TestPoisonMessage(t *testing.T) {
	pg := testpeer.PostgreSQL(t)
	o := DefaultOpts()
	o.MQTT, o.Postgres, o.Log = "tcp://127.0.0.1:1", pg.DSN(), quiet()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer w.pool.Close()
	ctx := context.Background()
	if err := Migrate(ctx, w.pool, quiet()); err != nil {
		t.Fatal(err)
	}
	v := newValidator(t)
	var b Batch
	for seq := int64(1); seq <= 5; seq++ {
		body := rtMessage("E1", "G1", seq, 3, false)
		if seq == 3 {
			body = bytes.Replace(body, []byte(`"P001"`), []byte(`"P\u0000"`), 1)
		}
		d, err := v.Decode(Topic{"E1", "G1", "rt"}, body, time.Now())
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		b.Messages = append(b.Messages, d.(*Message))
	}
	w.pending.Add(5)
	done := make(chan struct{})
	go func() { w.commit(ctx, b); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker is stuck on a message the database refuses")
	}
	c := w.Counters()
	if c.Stored != 4 || c.Rejected != 1 || w.pending.Load() != 0 {
		t.Fatalf("counters %+v, pending %d; want 4 stored, 1 rejected, none pending", c, w.pending.Load())
	}
	var seqs []int64
	for s := range w.unsent[gwKey{"E1", "G1"}] {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	if fmt.Sprint(seqs) != "[1 2 4 5]" {
		t.Fatalf("acknowledged %v, want [1 2 4 5]", seqs)
	}
	var topic, why string
	if err := w.pool.QueryRow(ctx, "SELECT topic, error FROM rejected").Scan(&topic, &why); err != nil {
		t.Fatal(err)
	}
	if topic != "safety/E1/G1/rt" || !strings.Contains(why, "seq 3") {
		t.Fatalf("rejected row: %s %s", topic, why)
	}
}
