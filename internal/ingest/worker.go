// Package ingest is the platform side of the native MQTT uplink: a worker
// that takes the gateways' messages from a shared MQTT subscription,
// validates them against docs/uplink.schema.json, stores them in PostgreSQL
// and acknowledges each seq on the gateway's .../ack topic only after the
// transaction that stored it committed. N workers in one subscription group
// split the load; a worker that dies only causes resends, which the primary
// key (enterprise, gateway, seq) absorbs. See docs/ingest.md.
package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Opts configures a worker.
type Opts struct {
	MQTT     string // tcp://, ssl://, ws://, wss:// broker URL
	Postgres string // libpq DSN or URL
	Name     string // MQTT client id, unique per worker; default edgeingest-<host>-<pid>
	Prefix   string // topic prefix, default safety
	Group    string // shared-subscription group, default edgeingest
	Username string
	Password string
	TLS      *tls.Config

	// BatchWindow is how long the first message of a batch waits for
	// others to share its transaction (100ms); BatchMessages (2000) and
	// BatchBytes (16 MiB of message bodies) cap a batch.
	BatchWindow   time.Duration
	BatchMessages int
	BatchBytes    int
	// Decoders validate and decode in parallel (GOMAXPROCS).
	Decoders int
	// Queue bounds the messages received and not yet decoded, and again
	// those decoded and not yet batched (2048 each: at most 256 MiB of
	// 64 KiB messages); when it is full the worker stops reading from the
	// broker.
	Queue int
	// StatsEvery logs the counters (10s; 0 never).
	StatsEvery time.Duration
	// ReconnectMin and ReconnectMax bound the broker reconnect backoff.
	ReconnectMin, ReconnectMax time.Duration
	Log                        *slog.Logger
}

// DefaultOpts returns the defaults; MQTT and Postgres must still be set.
func DefaultOpts() Opts {
	host, _ := os.Hostname()
	return Opts{
		Name:          fmt.Sprintf("edgeingest-%s-%d", host, os.Getpid()),
		Prefix:        "safety",
		Group:         "edgeingest",
		BatchWindow:   100 * time.Millisecond,
		BatchMessages: 2000,
		Decoders:      runtime.GOMAXPROCS(0),
		BatchBytes:    16 << 20,
		Queue:         2048,
		StatsEvery:    10 * time.Second,
		ReconnectMin:  200 * time.Millisecond,
		ReconnectMax:  10 * time.Second,
	}
}

// Counters are a worker's cumulative figures.
type Counters struct {
	Received, Stored, Duplicates, Rejected      uint64
	Readings, Events, Statistics, States, Acked uint64
	Batches, Connects                           uint64
}

// Worker is one ingest process's work.
type Worker struct {
	o     Opts
	log   *slog.Logger
	v     *Validator
	pool  *pgxpool.Pool
	store *store

	received, stored, dups, rejected atomic.Uint64
	readings, events, stats, states  atomic.Uint64
	acked, batches, connects         atomic.Uint64
	// pending counts messages received and neither stored nor rejected.
	pending atomic.Int64

	mu     sync.Mutex
	pub    publisher                // the current connection, nil while down
	unsent map[gwKey]map[int64]bool // acks waiting for a connection
}

// publisher sends acks on the current connection.
type publisher interface {
	Publish(topic string, payload []byte)
}

// New checks o and opens the PostgreSQL pool (no connection yet).
func New(o Opts) (*Worker, error) {
	d := DefaultOpts()
	if o.MQTT == "" || o.Postgres == "" {
		return nil, errors.New("ingest: both --mqtt and --postgres are required")
	}
	if o.Name == "" {
		o.Name = d.Name
	}
	if o.Prefix == "" {
		o.Prefix = d.Prefix
	}
	if o.Group == "" {
		o.Group = d.Group
	}
	if o.BatchWindow <= 0 {
		o.BatchWindow = d.BatchWindow
	}
	if o.BatchMessages <= 0 {
		o.BatchMessages = d.BatchMessages
	}
	if o.Decoders <= 0 {
		o.Decoders = d.Decoders
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = d.BatchBytes
	}
	if o.Queue <= 0 {
		o.Queue = d.Queue
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = d.ReconnectMin
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(d.ReconnectMax, o.ReconnectMin)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	v, err := NewValidator()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(o.Postgres)
	if err != nil {
		return nil, fmt.Errorf("ingest: --postgres: %w", err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("ingest: --postgres: %w", err)
	}
	w := &Worker{o: o, log: o.Log.With("worker", o.Name), v: v, pool: pool, unsent: map[gwKey]map[int64]bool{}}
	w.store = &store{pool: pool, worker: o.Name}
	return w, nil
}

// Counters returns the cumulative figures.
func (w *Worker) Counters() Counters {
	return Counters{
		Received: w.received.Load(), Stored: w.stored.Load(), Duplicates: w.dups.Load(), Rejected: w.rejected.Load(),
		Readings: w.readings.Load(), Events: w.events.Load(), Statistics: w.stats.Load(), States: w.states.Load(),
		Acked: w.acked.Load(), Batches: w.batches.Load(), Connects: w.connects.Load(),
	}
}

// inbound is a message as the broker delivered it.
type inbound struct {
	topic    string
	payload  []byte
	received time.Time
}

// drainTimeout bounds how long a stopping worker spends storing and
// acknowledging what it has already received.
const drainTimeout = 10 * time.Second

// Run migrates the schema, then receives, stores and acknowledges until ctx
// ends. A database or broker outage is waited out: Run returns an error
// only when the database cannot be reached at start or its schema is newer
// than this binary's. When ctx ends the worker unsubscribes, stores and
// acknowledges what it holds (for at most 10 s), then disconnects.
func (w *Worker) Run(ctx context.Context) error {
	defer w.pool.Close()
	if err := w.migrate(ctx); err != nil {
		return err
	}
	in := make(chan inbound, w.o.Queue)
	decoded := make(chan any, w.o.Queue)
	// The pipeline outlives ctx by the drain.
	work, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	var wg sync.WaitGroup
	for range w.o.Decoders {
		wg.Go(func() { w.decode(work, in, decoded) })
	}
	wg.Go(func() { w.write(work, decoded) })
	if w.o.StatsEvery > 0 {
		wg.Go(func() { w.logStats(work) })
	}
	w.subscribe(ctx, work, in)
	w.waitIdle(drainTimeout) // when the broker was away at the end
	stop()
	wg.Wait()
	return nil
}

// waitIdle waits until every message received is stored or rejected.
func (w *Worker) waitIdle(within time.Duration) {
	deadline := time.Now().Add(within)
	for w.pending.Load() > 0 {
		if time.Now().After(deadline) {
			w.log.Warn("stopping with messages not stored; the gateways will send them again", "count", w.pending.Load())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// migrate retries a database that is not up yet for a while: workers and
// the database often start together.
func (w *Worker) migrate(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := Migrate(ctx, w.pool, w.log)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		w.log.Warn("cannot migrate the schema yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (w *Worker) decode(ctx context.Context, in <-chan inbound, out chan<- any) {
	for {
		var m inbound
		select {
		case <-ctx.Done():
			return
		case m = <-in:
		}
		t, err := ParseTopic(w.o.Prefix, m.topic)
		var d any
		if err == nil {
			d, err = w.v.Decode(t, m.payload, m.received)
		}
		if err != nil {
			w.rejected.Add(1)
			w.pending.Add(-1)
			w.log.Warn("message rejected", "topic", m.topic, "err", truncate(err.Error(), 300))
			if rerr := w.store.reject(ctx, m.topic, m.payload, err); rerr != nil && ctx.Err() == nil {
				w.log.Error("cannot record a rejected message", "topic", m.topic, "err", rerr)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case out <- d:
		}
	}
}

// write collects decoded messages into batches of at most BatchWindow and
// stores each in one transaction, then acknowledges its seqs.
func (w *Worker) write(ctx context.Context, in <-chan any) {
	var b Batch
	var window <-chan time.Time
	size := 0
	add := func(d any) {
		switch x := d.(type) {
		case *Message:
			b.Messages = append(b.Messages, x)
			size += len(x.Body)
		case *State:
			b.States = append(b.States, x)
			size += len(x.Body)
		}
	}
	full := func() bool { return len(b.Messages)+len(b.States) >= w.o.BatchMessages || size >= w.o.BatchBytes }
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-in:
			add(d)
			if window == nil {
				window = time.After(w.o.BatchWindow)
			}
			if !full() {
				continue
			}
		case <-window:
		}
		// Take what is already decoded too, up to the caps.
	more:
		for !full() {
			select {
			case d := <-in:
				add(d)
			default:
				break more
			}
		}
		w.commit(ctx, b)
		b, window, size = Batch{}, nil, 0
	}
}

// commit stores b, retrying while the database is away, then acknowledges.
// A batch the database refuses for its content (a data exception: a NUL
// character, a value out of range) is split, so that one poison message is
// rejected alone and never holds back the others or the worker.
func (w *Worker) commit(ctx context.Context, b Batch) {
	backoff := 100 * time.Millisecond
	for {
		st, err := w.store.Write(ctx, b)
		if err == nil {
			w.batches.Add(1)
			w.stored.Add(uint64(st.New))
			w.dups.Add(uint64(st.Dups))
			w.readings.Add(uint64(st.Readings))
			w.events.Add(uint64(st.Events))
			w.stats.Add(uint64(st.Statistics))
			w.states.Add(uint64(len(b.States)))
			w.ack(st.Acks)
			w.pending.Add(-int64(len(b.Messages) + len(b.States)))
			return
		}
		if ctx.Err() != nil {
			// Not stored, not acknowledged: the gateways send it again.
			return
		}
		if refused(err) {
			if len(b.Messages)+len(b.States) == 1 {
				w.refuse(ctx, b, err)
				return
			}
			for _, m := range b.Messages {
				w.commit(ctx, Batch{Messages: []*Message{m}})
			}
			for _, s := range b.States {
				w.commit(ctx, Batch{States: []*State{s}})
			}
			return
		}
		w.log.Error("cannot store a batch; retrying", "messages", len(b.Messages), "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// refused reports an error caused by the data itself, which no retry cures:
// SQLSTATE class 22 (data exception) or 54 (program limit exceeded).
func refused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "54"))
}

// refuse records the one message of b as rejected; it is not acknowledged.
func (w *Worker) refuse(ctx context.Context, b Batch, err error) {
	var topic string
	var body []byte
	if len(b.Messages) == 1 {
		m := b.Messages[0]
		topic, body = w.o.Prefix+"/"+m.Enterprise+"/"+m.Gateway+"/"+m.Kind, m.Body
		err = fmt.Errorf("%s/%s seq %d: the database refuses it: %w", m.Enterprise, m.Gateway, m.Seq, err)
	} else {
		s := b.States[0]
		topic, body = w.o.Prefix+"/"+s.Enterprise+"/"+s.Gateway+"/"+s.Leaf, s.Body
		err = fmt.Errorf("%s/%s %s: the database refuses it: %w", s.Enterprise, s.Gateway, s.Leaf, err)
	}
	w.rejected.Add(1)
	w.pending.Add(-1)
	w.log.Warn("message rejected", "topic", topic, "err", truncate(err.Error(), 300))
	if rerr := w.store.reject(ctx, topic, body, err); rerr != nil && ctx.Err() == nil {
		w.log.Error("cannot record a rejected message", "topic", topic, "err", rerr)
	}
}

func (w *Worker) logStats(ctx context.Context) {
	t := time.NewTicker(w.o.StatsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c := w.Counters()
			w.log.Info("ingest", "received", c.Received, "stored", c.Stored, "duplicates", c.Duplicates,
				"rejected", c.Rejected, "readings", c.Readings, "events", c.Events, "acked", c.Acked, "batches", c.Batches)
		}
	}
}
