package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Batch is what one transaction stores.
type Batch struct {
	Messages []*Message
	States   []*State
}

// gwKey names a gateway.
type gwKey struct{ Enterprise, Gateway string }

// Stored is the outcome of a committed batch: the seqs to acknowledge per
// gateway (new and duplicates alike: both are in the table now).
type Stored struct {
	Acks       map[gwKey][]int64
	New, Dups  int
	Readings   int
	Events     int
	Statistics int
}

// store writes batches in one transaction each.
type store struct {
	pool   *pgxpool.Pool
	worker string
}

// retryable reports a deadlock or serialization failure, which a second
// attempt of the same transaction resolves.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Write stores b and returns once the transaction committed. Rows are
// written in key order so that concurrent workers never deadlock on the
// same gateways; a deadlock or serialization failure is retried.
func (s *store) Write(ctx context.Context, b Batch) (Stored, error) {
	slices.SortFunc(b.Messages, func(x, y *Message) int {
		return cmp.Or(cmp.Compare(x.Enterprise, y.Enterprise), cmp.Compare(x.Gateway, y.Gateway), cmp.Compare(x.Seq, y.Seq))
	})
	// One copy of each seq per batch: a resend may arrive beside the first.
	uniq := b.Messages[:0:0]
	for i, m := range b.Messages {
		if i > 0 && m.Seq == b.Messages[i-1].Seq && m.Gateway == b.Messages[i-1].Gateway && m.Enterprise == b.Messages[i-1].Enterprise {
			continue
		}
		uniq = append(uniq, m)
	}
	var out Stored
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		out, err = s.write(ctx, uniq, b.States)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	if err != nil {
		return Stored{}, err
	}
	out.Dups += len(b.Messages) - len(uniq)
	out.Acks = map[gwKey][]int64{}
	for _, m := range uniq {
		k := gwKey{m.Enterprise, m.Gateway}
		out.Acks[k] = append(out.Acks[k], m.Seq)
	}
	return out, nil
}

type gwUpdate struct {
	lastSeq       *int64
	lastMessageAt *time.Time
	online        *bool
	stateAt       *time.Time
	heartbeatAt   *time.Time
	heartbeat     []byte
	reportedLast  *int64
	dropped       *int64
	droppedRanges []byte
	meta          []byte
	metaAt        *time.Time
}

func (s *store) write(ctx context.Context, msgs []*Message, states []*State) (Stored, error) {
	var out Stored
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return out, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	isNew := map[gwKey]map[int64]bool{}
	if len(msgs) > 0 {
		n := len(msgs)
		ent, gw, kind, body := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seq := make([]int64, n)
		resend := make([]bool, n)
		created := make([]*time.Time, n)
		sent := make([]time.Time, n)
		for i, m := range msgs {
			ent[i], gw[i], kind[i], body[i], seq[i], resend[i], sent[i] = m.Enterprise, m.Gateway, m.Kind, string(m.Body), m.Seq, m.Resend, m.SentAt
			if !m.Created.IsZero() {
				created[i] = &m.Created
			}
		}
		rows, err := tx.Query(ctx, `INSERT INTO messages (enterprise, gateway, seq, kind, created, resend, sent_at, worker, body)
			SELECT e, g, s, k, c, r, t, $8, b::jsonb
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::boolean[], $7::timestamptz[], $9::text[])
			     AS u(e, g, s, k, c, r, t, b)
			ON CONFLICT DO NOTHING
			RETURNING enterprise, gateway, seq`,
			ent, gw, seq, kind, created, resend, sent, s.worker, body)
		if err != nil {
			return out, fmt.Errorf("insert messages: %w", err)
		}
		for rows.Next() {
			var k gwKey
			var sq int64
			if err := rows.Scan(&k.Enterprise, &k.Gateway, &sq); err != nil {
				rows.Close()
				return out, fmt.Errorf("insert messages: %w", err)
			}
			if isNew[k] == nil {
				isNew[k] = map[int64]bool{}
			}
			isNew[k][sq] = true
			out.New++
		}
		if err := rows.Err(); err != nil {
			return out, fmt.Errorf("insert messages: %w", err)
		}
		out.Dups = n - out.New
	}

	var readings, events, stats [][]any
	for _, m := range msgs {
		if !isNew[gwKey{m.Enterprise, m.Gateway}][m.Seq] {
			continue
		}
		for _, r := range m.Readings {
			readings = append(readings, []any{m.Enterprise, m.Gateway, m.Seq, r.Point, r.TS, r.Value, r.Text, r.Unit, r.Quality, r.Alarm, r.Fault})
		}
		for _, e := range m.Events {
			var ranges []byte
			if e.Ranges != nil {
				ranges, _ = json.Marshal(e.Ranges)
			}
			events = append(events, []any{m.Enterprise, m.Gateway, m.Seq, e.ID, e.Type, e.State, e.Subject, e.TS, e.Level, ranges, e.Count, e.Message, []byte(e.Body)})
		}
		for _, st := range m.Stats {
			stats = append(stats, []any{m.Enterprise, m.Gateway, m.Seq, st.Point, st.Period, st.Start, st.Unit, st.Avg, st.Min, st.Max, st.Count, st.Quality})
		}
	}
	if len(readings) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"readings"},
			[]string{"enterprise", "gateway", "seq", "point", "ts", "value", "value_text", "unit", "quality", "alarm", "fault"},
			pgx.CopyFromRows(readings)); err != nil {
			return out, fmt.Errorf("copy readings: %w", err)
		}
	}
	if len(events) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
			[]string{"enterprise", "gateway", "seq", "id", "type", "state", "subject", "ts", "level", "ranges", "count", "message", "body"},
			pgx.CopyFromRows(events)); err != nil {
			return out, fmt.Errorf("copy events: %w", err)
		}
	}
	if len(stats) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stats"},
			[]string{"enterprise", "gateway", "seq", "point", "period", "start", "unit", "avg", "min", "max", "count", "quality"},
			pgx.CopyFromRows(stats)); err != nil {
			return out, fmt.Errorf("copy stats: %w", err)
		}
	}
	out.Readings, out.Events, out.Statistics = len(readings), len(events), len(stats)

	if err := s.updateGateways(ctx, tx, msgs, states); err != nil {
		return out, err
	}
	if err := tx.Commit(ctx); err != nil {
		return out, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}

// updateGateways upserts one row per gateway the batch touched, in key order.
func (s *store) updateGateways(ctx context.Context, tx pgx.Tx, msgs []*Message, states []*State) error {
	ups := map[gwKey]*gwUpdate{}
	get := func(e, g string) *gwUpdate {
		k := gwKey{e, g}
		if ups[k] == nil {
			ups[k] = &gwUpdate{}
		}
		return ups[k]
	}
	now := time.Now()
	for _, m := range msgs {
		u := get(m.Enterprise, m.Gateway)
		if u.lastSeq == nil || m.Seq > *u.lastSeq {
			sq := m.Seq
			u.lastSeq = &sq
		}
		u.lastMessageAt = &now
	}
	for _, st := range states {
		u := get(st.Enterprise, st.Gateway)
		at := st.TS
		if st.Leaf == "meta" {
			if u.metaAt == nil || !at.Before(*u.metaAt) {
				u.meta, u.metaAt = st.Body, &at
			}
			continue
		}
		if u.stateAt == nil || !at.Before(*u.stateAt) {
			u.online, u.stateAt = st.Online, &at
		}
		if st.Heartbeat != nil && (u.heartbeatAt == nil || !at.Before(*u.heartbeatAt)) {
			u.heartbeat, u.heartbeatAt = st.Heartbeat, &at
			u.reportedLast, u.dropped, u.droppedRanges = st.LastSeq, st.Dropped, st.DroppedRanges
		}
	}
	keys := make([]gwKey, 0, len(ups))
	for k := range ups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b gwKey) int {
		return cmp.Or(cmp.Compare(a.Enterprise, b.Enterprise), cmp.Compare(a.Gateway, b.Gateway))
	})
	var pb pgx.Batch
	for _, k := range keys {
		u := ups[k]
		pb.Queue(`INSERT INTO gateways AS g (enterprise, gateway, last_seq, last_message_at, online, state_at,
				last_heartbeat, heartbeat, reported_last_seq, dropped, dropped_ranges, meta, meta_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11::jsonb, $12::jsonb, $13)
			ON CONFLICT (enterprise, gateway) DO UPDATE SET
				last_seq        = GREATEST(g.last_seq, EXCLUDED.last_seq),
				last_message_at = GREATEST(g.last_message_at, EXCLUDED.last_message_at),
				online   = CASE WHEN EXCLUDED.state_at >= g.state_at OR g.state_at IS NULL THEN coalesce(EXCLUDED.online, g.online) ELSE g.online END,
				state_at = GREATEST(g.state_at, EXCLUDED.state_at),
				heartbeat         = CASE WHEN EXCLUDED.last_heartbeat >= g.last_heartbeat OR g.last_heartbeat IS NULL THEN coalesce(EXCLUDED.heartbeat, g.heartbeat) ELSE g.heartbeat END,
				reported_last_seq = CASE WHEN EXCLUDED.last_heartbeat >= g.last_heartbeat OR g.last_heartbeat IS NULL THEN coalesce(EXCLUDED.reported_last_seq, g.reported_last_seq) ELSE g.reported_last_seq END,
				dropped           = CASE WHEN EXCLUDED.last_heartbeat >= g.last_heartbeat OR g.last_heartbeat IS NULL THEN coalesce(EXCLUDED.dropped, g.dropped) ELSE g.dropped END,
				dropped_ranges    = CASE WHEN EXCLUDED.last_heartbeat >= g.last_heartbeat OR g.last_heartbeat IS NULL THEN coalesce(EXCLUDED.dropped_ranges, g.dropped_ranges) ELSE g.dropped_ranges END,
				last_heartbeat    = GREATEST(g.last_heartbeat, EXCLUDED.last_heartbeat),
				meta    = CASE WHEN EXCLUDED.meta_at >= g.meta_at OR g.meta_at IS NULL THEN coalesce(EXCLUDED.meta, g.meta) ELSE g.meta END,
				meta_at = GREATEST(g.meta_at, EXCLUDED.meta_at)`,
			k.Enterprise, k.Gateway, u.lastSeq, u.lastMessageAt, u.online, u.stateAt,
			u.heartbeatAt, nullJSON(u.heartbeat), u.reportedLast, u.dropped, nullJSON(u.droppedRanges), nullJSON(u.meta), u.metaAt)
	}
	if pb.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, &pb).Close(); err != nil {
		return fmt.Errorf("update gateways: %w", err)
	}
	return nil
}

func nullJSON(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// reject records a message that failed validation, so an operator can see
// what a gateway sent; the payload is kept up to 64 KiB.
func (s *store) reject(ctx context.Context, topic string, payload []byte, why error) error {
	if len(payload) > 64<<10 {
		payload = payload[:64<<10]
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO rejected (worker, topic, error, payload) VALUES ($1, $2, $3, $4)",
		s.worker, clean(topic), clean(truncate(why.Error(), 2000)), payload)
	return err
}

// clean makes s storable as text: valid UTF-8 without NUL.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", `\u0000`)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
