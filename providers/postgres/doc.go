// Package postgres is the mqttstore driver for PostgreSQL, on github.com/jackc/pgx/v5
// (pgxpool). It registers itself as "postgres" and "postgresql":
//
//	import _ "github.com/mqttstore/mqttstore/providers/postgres"
//	s, err := persistence.Open(ctx, "postgres://mqtt:secret@db.example/mqtt?schema=broker1&max_conns=16")
//
// or, without a URL, on a pool the program already has (the store's Close leaves it
// open):
//
//	s, err := persistence.OpenConnector(ctx, &postgres.Config{Pool: pool, Schema: "broker1"})
//
// [ParseConfig] turns a URL into a [Config] to adjust before opening. It is the
// driver for several brokers sharing one replicated, backed-up database.
//
// # Layout
//
// Real tables, one per kind of record (see migrations/0001_init.sql), in the
// store's schema: mqtt_sessions (with the state, the expiry blob and the next
// deadline as indexed columns), mqtt_subscriptions, mqtt_packets keyed (session,
// class, seq) so a queue is an index range, mqtt_retained with an index on the
// topic's first 128 bytes for wildcard loads, mqtt_system, and
// mqtt_schema_migrations. Values are the SDK's blob encodings, so corrupted rows
// decode to [persistence.ErrBrokenEntry]. Ids, filters and topics are bytea of any
// length; rows are keyed by their SHA-256. Counts are index range counts, not counter
// rows, so concurrent appenders never contend on one row. Statements name the
// schema, so they do not depend on the pool's search_path.
//
// # Options
//
// The URL's options are listed at [ParseConfig]; anything else is refused with
// [persistence.ErrInvalidConfig].
//
// # Behaviour
//
// Migrations are embedded and applied on open in one transaction under
// pg_advisory_xact_lock, so brokers starting together do not race; a database
// migrated by a newer driver is refused with [persistence.ErrSchemaVersion].
// Writes are built for a broker's traffic, in round trips and in statements:
//
//   - Within one Apply, a run of PacketAppends (a fan-out to every matching
//     session) is one INSERT … SELECT FROM unnest(…) whatever the number of
//     sessions, and a run of PacketDeletes (acknowledgements, a page moved to
//     in-flight) is one DELETE … USING unnest(…); both write nothing when one of
//     their sessions is missing, so the Apply stays atomic.
//   - A write that overlaps others goes to one group committer. A group of
//     one-statement writes is one pipelined batch (one round trip, one implicit
//     transaction, one WAL flush); its packet writes (single appends and
//     deletes, and Applies of packet writes with their fences: a broker's
//     fan-outs, moves to in-flight and acknowledgements, which in cluster mode
//     are all fenced) are merged into one statement, in which each caller's
//     writes happen only when its own fences hold and its sessions exist
//     (packetwrite.go). A group that holds a
//     multi-statement Apply is one explicit transaction (BEGIN and every statement
//     pipelined, then COMMIT: two round trips and one WAL flush for the group); an
//     Apply whose statement reports a failure (a missing session) gets it, and the
//     transaction is rolled back and run again without that Apply.
//   - Statements are prepared once per connection and cached by pgx
//     (QueryExecModeCacheStatement, the default): their texts are fixed, lists
//     travel as array parameters.
//   - Sessions.PacketStatsForEach (driver.PacketStatsConn) counts every session's
//     packets and their sizes by class in one query per 10,000 sessions, which is
//     what a broker's restart reads instead of every queue.
//   - Sessions.LoadForEach reads the sessions and subscriptions tables with one
//     sequential scan each when they hold at most 128 MiB of heap together, and
//     holds those sessions decoded before it hands them out; a larger store is read
//     in ranges of about 128 MiB of heap each, so memory stays bounded.
//   - A queue is read in sequence order down the primary key, whatever the
//     planner estimates for the session, so the head of a long queue costs a page,
//     not the queue.
//
// Iterations read pages of rows by key and run callbacks with no connection held.
// providers/postgres/BENCH.md has the statements and commits per message measured
// with pg_stat_statements through the broker.
//
// # Connection pool
//
// max_conns defaults to 8. The group committer uses one connection at a time for
// every overlapping write, so writes do not need more; the rest serve reads
// (each delivering connection's page reads, restore) and the writes that run on
// their caller's goroutine when nothing else is in flight. Measured through the
// broker (BENCH.md, scenario 1's 16 publishers and 16 subscribers), at most one
// connection was running a statement at any sample, 0.6–0.7 on average; raise
// max_conns for many concurrent readers, not for write throughput, which one
// committer bounds (two or four committers were measured and did worse, see
// BENCH.md). synchronous_commit is the server's (on by default: PUBACK means the
// WAL is flushed); synchronous_commit=off on the URL gave 1.2x the messages per
// second through the broker (BENCH.md) and loses the last commits on a server
// crash.
//
// # Several brokers on one schema
//
// The store can be shared (persistence.Store.Shared is true): node leases live in
// mqtt_nodes, session owners in mqtt_owners with epochs from a sequence
// (migrations/0002_shared.sql). A claim is one INSERT ... ON CONFLICT statement, so
// of concurrent claims exactly one wins; a batch fenced with
// persistence.Batch.Fence locks its sessions' owner rows FOR SHARE in the batch's
// own transaction and writes nothing, failing with [persistence.ErrFenced], when
// a claim has moved one of them. Lease times are read from the store's clock
// (persistence.WithClock); fencing does not depend on clocks.
package postgres
