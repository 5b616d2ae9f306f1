package ingest

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the pg_advisory_lock key under which workers migrate, so
// N workers may start at once ("edgeingest" in ASCII).
const migrationLock int64 = 0x6564676569676e

// migrations are applied in order, each in its own transaction; the
// schema_migrations table records which ran. Never edit one that shipped:
// add the next.
var migrations = []string{
	// 1: the reference schema.
	`
CREATE TABLE messages (
	enterprise  text        NOT NULL,
	gateway     text        NOT NULL,
	seq         bigint      NOT NULL,
	kind        text        NOT NULL,
	created     timestamptz,
	resend      boolean     NOT NULL,
	sent_at     timestamptz NOT NULL,
	stored_at   timestamptz NOT NULL DEFAULT now(),
	worker      text        NOT NULL,
	body        jsonb       NOT NULL,
	PRIMARY KEY (enterprise, gateway, seq)
);
CREATE TABLE readings (
	enterprise  text        NOT NULL,
	gateway     text        NOT NULL,
	seq         bigint      NOT NULL,
	point       text        NOT NULL,
	ts          timestamptz NOT NULL,
	value       double precision,
	value_text  text,
	unit        text        NOT NULL,
	quality     text        NOT NULL,
	alarm       text,
	fault       text
);
CREATE INDEX readings_point_ts ON readings (enterprise, gateway, point, ts);
CREATE TABLE events (
	enterprise  text        NOT NULL,
	gateway     text        NOT NULL,
	seq         bigint      NOT NULL,
	id          text        NOT NULL,
	type        text        NOT NULL,
	state       text        NOT NULL,
	subject     text        NOT NULL,
	ts          timestamptz NOT NULL,
	level       text,
	ranges      jsonb,
	count       bigint,
	message     text,
	body        jsonb       NOT NULL,
	PRIMARY KEY (enterprise, gateway, seq, id)
);
CREATE INDEX events_ts ON events (enterprise, gateway, ts);
CREATE INDEX events_loss ON events (enterprise, gateway) WHERE state IN ('buffer_dropped', 'buffer_recreated');
CREATE TABLE stats (
	enterprise  text        NOT NULL,
	gateway     text        NOT NULL,
	seq         bigint      NOT NULL,
	point       text        NOT NULL,
	period      text        NOT NULL,
	start       timestamptz NOT NULL,
	unit        text        NOT NULL,
	avg         double precision,
	min         double precision,
	max         double precision,
	count       bigint      NOT NULL,
	quality     text        NOT NULL
);
CREATE INDEX stats_point_start ON stats (enterprise, gateway, point, period, start);
CREATE TABLE gateways (
	enterprise        text        NOT NULL,
	gateway           text        NOT NULL,
	last_seq          bigint,
	last_message_at   timestamptz,
	online            boolean,
	state_at          timestamptz,
	last_heartbeat    timestamptz,
	heartbeat         jsonb,
	reported_last_seq bigint,
	dropped           bigint,
	dropped_ranges    jsonb,
	meta              jsonb,
	meta_at           timestamptz,
	PRIMARY KEY (enterprise, gateway)
);
CREATE TABLE rejected (
	id          bigserial   PRIMARY KEY,
	received_at timestamptz NOT NULL DEFAULT now(),
	worker      text        NOT NULL,
	topic       text        NOT NULL,
	error       text        NOT NULL,
	payload     bytea       NOT NULL
);
`,
}

// Migrate brings the schema to the latest version. It holds
// pg_advisory_lock for the whole run, so concurrent workers wait for the
// first and then find nothing to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migrate: advisory lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: the database is at schema version %d, newer than this binary's %d", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		log.Info("schema migrated", "version", v)
	}
	return nil
}
