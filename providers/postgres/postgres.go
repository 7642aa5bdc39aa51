package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/internal/groupcommit"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Name is the driver's name; "postgresql" is registered as an alias.
const Name = "postgres"

func init() {
	persistence.Register(Name, Driver{})
	persistence.Register("postgresql", Driver{})
}

// conn is an open store: a [driver.Conn] on a pgx pool.
type conn struct {
	pool    *pgxpool.Pool
	ownPool bool // the pool was made by Connect, so Close closes it
	schema  string
	env     driver.Env
	secrets []string // removed from the messages of errors pgx returns
	qual    *strings.Replacer
	sql     sync.Map // fixed statement → the same naming the schema's tables (see q)
	// committers merge concurrent single writes (none without group commit). More
	// than one keeps a group filling while another is in flight, so the server
	// overlaps one group's WAL flush with the next group's work.
	committers []*groupcommit.Committer[*stmt]
	next       atomic.Uint32
	inflight   atomic.Int32 // single writes in progress (decides grouping)
	// writing counts the writes in progress; once closing is set no write starts,
	// and Close waits for writing to reach zero (see beginWrite).
	writing   atomic.Int32
	closing   atomic.Bool
	closeOnce sync.Once
	listen    listeners // notify.go
	// loadBudget is the table heap LoadForEach reads per range (see load.go);
	// statsPage the sessions per PacketStatsForEach round trip (stats.go).
	loadBudget int64
	statsPage  int
}

var _ driver.Conn = (*conn)(nil)

// tables are the names every statement qualifies with the store's schema.
var tables = []string{
	"mqtt_sessions", "mqtt_subscriptions", "mqtt_packets", "mqtt_retained", "mqtt_system",
	"mqtt_schema_migrations", "mqtt_nodes", "mqtt_owners",
}

// newQualifier returns a replacer that qualifies every table, and the packet
// and ownership sequences, with schema, so that statements do not depend on the pool's
// search_path (a pool the user passed in has its own).
func newQualifier(schema string) *strings.Replacer {
	ident := pgx.Identifier{schema}.Sanitize()
	pairs := []string{
		// The sequence is named in a string literal: its quotes are doubled.
		"'mqtt_packet_seq'", "'" + strings.ReplaceAll(ident, "'", "''") + ".mqtt_packet_seq'",
		"'mqtt_owner_epoch'", "'" + strings.ReplaceAll(ident, "'", "''") + ".mqtt_owner_epoch'",
	}
	for _, t := range tables {
		pairs = append(pairs, t, ident+"."+t)
	}
	return strings.NewReplacer(pairs...)
}

// q returns the fixed statement sql with its names qualified (see newQualifier),
// computed once per statement text.
func (c *conn) q(sql string) string {
	if v, ok := c.sql.Load(sql); ok {
		return v.(string)
	}
	out := c.qual.Replace(sql)
	c.sql.Store(sql, out)
	return out
}

func hashOf(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// beginWrite registers a write in progress; it fails once Close has started, so
// that Close can wait for the writes that began before it. endWrite ends it.
func (c *conn) beginWrite() error {
	c.writing.Add(1)
	if c.closing.Load() {
		c.writing.Add(-1)
		return errClosed
	}
	return nil
}

func (c *conn) endWrite() { c.writing.Add(-1) }

var errClosed = fmt.Errorf("postgres: %w", driver.ErrClosed)

// Close stops accepting writes, waits for the queued and running ones, then closes
// the pool when Connect made it (a pool passed in [Config.Pool] stays open: it is
// the caller's). It is idempotent.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.listen.stop()
		for _, cm := range c.committers {
			cm.Close()
		}
		for c.writing.Load() > 0 {
			time.Sleep(time.Millisecond)
		}
		if c.ownPool {
			c.pool.Close()
		}
	})
	return nil
}

// Info reads the system row written when the schema was created.
func (c *conn) Info(ctx context.Context) (driver.SystemInfo, error) {
	var blob []byte
	if err := c.pool.QueryRow(ctx, c.q(`SELECT info FROM mqtt_system WHERE id = 1`)).Scan(&blob); err != nil {
		return driver.SystemInfo{}, c.wrap(ctx, "system info", err)
	}
	info, err := driver.DecodeSystemInfo(blob)
	if err != nil {
		return driver.SystemInfo{}, fmt.Errorf("postgres: system info: %w", err)
	}
	info.Driver = Name
	return info, nil
}

// wrap maps a pgx error for the SDK (see wrapErr). A connection that failed without
// the server answering most likely means the server went away, and every idle
// connection with it: dropping them all now spares the next callers one failure
// each once the server is back. A pool the user passed in is left alone.
func (c *conn) wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if c.ownPool && ctx.Err() == nil && !errors.As(err, &pe) && !errors.Is(err, pgx.ErrNoRows) && !c.closing.Load() {
		c.pool.Reset()
	}
	return scrub(wrapErr(ctx, what, err), c.secrets)
}

// wrapErr maps a pgx error to the SDK's typed errors, keeping the pgx error in the
// chain. A call whose context ended reports the context's error too: pgx does not
// always keep it in the chain.
func wrapErr(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("postgres: %s: %w: %w", what, cerr, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w: %w", what, driver.ErrNotFound, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("postgres: %s: %w: %w", what, driver.ErrAlreadyExists, err)
		case "23503": // foreign_key_violation: the session was deleted meanwhile
			return fmt.Errorf("postgres: %s: session: %w: %w", what, driver.ErrNotFound, err)
		}
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}
