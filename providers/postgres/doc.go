// Package postgres is the mqttstore driver for PostgreSQL, on github.com/jackc/pgx/v5
// (pgxpool). It registers itself as "postgres" and "postgresql":
//
//	import _ "github.com/mqttstore/mqttstore/providers/postgres"
//	p, err := persistence.Open(ctx, "postgres://mqtt:secret@db.example/mqtt?schema=broker1&max_conns=16")
//
// It is the driver for several brokers sharing one replicated, backed-up database.
//
// # Layout
//
// Real tables, one per kind of record (see migrations/0001_init.sql): mqtt_sessions
// (with the state, the expiry blob and the next deadline as indexed columns),
// mqtt_subscriptions, mqtt_packets keyed (session, class, seq) so a queue is an index
// range, mqtt_retained with an index on the topic's first 128 bytes for wildcard
// loads, mqtt_system, and mqtt_schema_migrations. Values are the SDK's blob encodings
// (persistence.Encode*), so corrupted rows decode to [persistence.ErrBrokenEntry].
// Ids, filters and topics are bytea of any length; rows are keyed by their SHA-256.
// Counts are index range counts (count(*) over the primary key of one queue), not
// counter rows, so concurrent appenders never contend on one row.
//
// # Options
//
//   - schema: the PostgreSQL schema holding the tables, created if missing (default
//     "public"). Each broker cluster, or each test, can have its own.
//   - max_conns (alias pool_max_conns): pool size, 1..1000 (default 8).
//   - connect_timeout: seconds ("10") or a Go duration ("2s"); default 10s.
//   - synchronous_commit: on, off, local, remote_write or remote_apply, set on every
//     connection (default: the server's setting). off trades the last few hundred
//     milliseconds of acknowledged writes on a server crash for throughput.
//   - group_commit: true (default) merges concurrent single writes into shared
//     transactions; false sends each on its own.
//   - sslmode, sslrootcert, sslcert, sslkey, sslpassword, application_name,
//     target_session_attrs: handed to pgx unchanged.
//
// Anything else is refused with [persistence.ErrInvalidConfig].
//
// # Behaviour
//
// Migrations are embedded and applied on open in one transaction under
// pg_advisory_xact_lock, so brokers starting together do not race; a database
// migrated by a newer driver is refused with [persistence.ErrSchemaVersion].
// Single operations are one statement (one round trip); concurrent single writes
// are merged by a group committer into one pipelined batch per transaction. Apply,
// PacketsStore and retained Store are one transaction each. Iterations read pages of
// rows by key and run callbacks with no connection held.
//
// This package imports persistence and pgx; it must not import another driver, the
// conformance suite or the broker.
package postgres
