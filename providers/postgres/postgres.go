package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/groupcommit"
)

// Name is the driver's name; "postgresql" is registered as an alias.
const Name = "postgres"

func init() {
	persistence.Register(Name, driver{})
	persistence.Register("postgresql", driver{})
}

type driver struct{}

// passThrough lists the libpq options handed to pgx unchanged.
var passThrough = []string{
	"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword",
	"application_name", "target_session_attrs",
}

// config is what Open reads from the URL.
type config struct {
	schema            string
	maxConns          int
	connectTimeout    time.Duration
	synchronousCommit string
	groupCommit       bool
	pgxDSN            string
}

func parseConfig(u *url.URL) (*config, error) {
	o := persistence.NewOptions(u.Query())
	c := &config{
		schema:            o.String("schema", "public"),
		synchronousCommit: o.Enum("synchronous_commit", "", "on", "off", "local", "remote_write", "remote_apply"),
		groupCommit:       o.Bool("group_commit", true),
	}
	c.maxConns = o.Int("max_conns", 8, 1, 1000)
	if o.Has("pool_max_conns") {
		if o.Has("max_conns") {
			return nil, fmt.Errorf("%w: give max_conns or pool_max_conns, not both", persistence.ErrInvalidConfig)
		}
		c.maxConns = o.Int("pool_max_conns", 8, 1, 1000)
	}
	var badTimeout error
	c.connectTimeout = 10 * time.Second
	if v := o.String("connect_timeout", ""); v != "" {
		d, err := parseTimeout(v)
		if err != nil {
			badTimeout = err
		}
		c.connectTimeout = d
	} else if o.Has("connect_timeout") {
		badTimeout = fmt.Errorf("%w: option \"connect_timeout\" is empty", persistence.ErrInvalidConfig)
	}
	keep := url.Values{}
	for _, k := range passThrough {
		if v := o.String(k, ""); o.Has(k) {
			keep.Set(k, v)
		}
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	if badTimeout != nil {
		return nil, badTimeout
	}
	if c.schema == "" || len(c.schema) > 63 || containsNUL(c.schema) {
		return nil, fmt.Errorf("%w: option \"schema\": %q is not a PostgreSQL identifier (1..63 bytes, no NUL)", persistence.ErrInvalidConfig, c.schema)
	}
	// pgx reads only its own options from the query; ours are stripped so that it
	// never sees (and never rejects or silently ignores) them.
	pu := *u
	pu.Scheme = "postgres"
	pu.RawQuery = keep.Encode()
	pu.Fragment = ""
	c.pgxDSN = pu.String()
	return c, nil
}

// parseTimeout reads libpq's whole seconds ("10") or a Go duration ("2s").
func parseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || n > 3600 {
			return 0, fmt.Errorf("%w: option \"connect_timeout\": %q is not in 1..3600 seconds", persistence.ErrInvalidConfig, v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > time.Hour {
		return 0, fmt.Errorf("%w: option \"connect_timeout\": %q is neither whole seconds nor a positive duration such as 2s", persistence.ErrInvalidConfig, v)
	}
	return d, nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// Open connects, migrates the schema and returns the provider.
func (driver) Open(ctx context.Context, cfg persistence.Config) (persistence.Provider, error) {
	c, err := parseConfig(cfg.URL)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(c.pgxDSN)
	if err != nil {
		// pgx's message may quote the DSN, password included; keep only its kind.
		return nil, fmt.Errorf("%w: postgres URL not accepted by pgx: %v", persistence.ErrInvalidConfig, redact(err))
	}
	pc.MaxConns = int32(c.maxConns)
	pc.ConnConfig.ConnectTimeout = c.connectTimeout
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{c.schema}.Sanitize()
	if c.synchronousCommit != "" {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = c.synchronousCommit
	}
	// Connections that sat idle may have died with a restarted server; a ping before
	// reuse keeps a stale connection from failing the caller's first query.
	pc.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, wrapErr(ctx, "open", err)
	}
	p := &provider{pool: pool, cfg: cfg, schema: c.schema}
	if err := p.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if c.groupCommit {
		p.committers = make([]*groupcommit.Committer[*stmt], committers)
		for i := range p.committers {
			p.committers[i] = groupcommit.New(p.commitGroup, 256)
		}
	}
	return p, nil
}

// provider is an open store.
type provider struct {
	pool   *pgxpool.Pool
	cfg    persistence.Config
	schema string
	// committers merge concurrent writes (none without group commit). More than one
	// keeps a group filling while another is in flight, so the server overlaps one
	// group's WAL flush with the next group's work.
	committers []*groupcommit.Committer[*stmt]
	next       atomic.Uint32
	inflight   atomic.Int32 // writes in progress
	closed     atomic.Bool
	closeOnce  sync.Once
}

// Sessions returns the session store, backed by mqtt_sessions and the tables
// referencing it.
func (p *provider) Sessions() persistence.Sessions { return (*sessions)(p) }

// Retained returns the retained-message store (mqtt_retained).
func (p *provider) Retained() persistence.Retained { return (*retained)(p) }

// System returns the store's metadata (mqtt_system).
func (p *provider) System() persistence.System { return (*system)(p) }

func (p *provider) errClosed() error                { return fmt.Errorf("postgres: %w", persistence.ErrClosed) }
func hashOf(s string) []byte                        { h := sha256.Sum256([]byte(s)); return h[:] }
func (p *provider) check(ctx context.Context) error { return p.checkErr(ctx.Err()) }

// checkErr returns ctxErr, or ErrClosed after Close.
func (p *provider) checkErr(ctxErr error) error {
	if ctxErr != nil {
		return ctxErr
	}
	if p.closed.Load() {
		return p.errClosed()
	}
	return nil
}

// Close waits for the queued writes, then closes the pool (which waits for the
// connections in use). It is idempotent.
func (p *provider) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		for _, c := range p.committers {
			c.Close()
		}
		p.pool.Close()
	})
	return nil
}

type system provider

// GetInfo reads the system row written when the schema was created.
func (s *system) GetInfo(ctx context.Context) (persistence.SystemInfo, error) {
	p := (*provider)(s)
	if err := p.check(ctx); err != nil {
		return persistence.SystemInfo{}, err
	}
	var blob []byte
	if err := p.pool.QueryRow(ctx, `SELECT info FROM mqtt_system WHERE id = 1`).Scan(&blob); err != nil {
		return persistence.SystemInfo{}, p.wrap(ctx, "system info", err)
	}
	info, err := persistence.DecodeSystemInfo(blob)
	if err != nil {
		return persistence.SystemInfo{}, fmt.Errorf("postgres: system info: %w", err)
	}
	info.Driver = Name
	return info, nil
}

// wrap maps err for the SDK, checking Close first: a pool closed under a call
// reports ErrClosed.
func (p *provider) wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if p.closed.Load() {
		return fmt.Errorf("postgres: %s: %w: %w", what, persistence.ErrClosed, err)
	}
	var pe *pgconn.PgError
	if ctx.Err() == nil && !errors.As(err, &pe) && !errors.Is(err, pgx.ErrNoRows) {
		// A connection failed without the server answering: most likely the server
		// went away, and every idle connection with it. Dropping them all now spares
		// the next callers one failure each once the server is back.
		p.pool.Reset()
	}
	return wrapErr(ctx, what, err)
}

// wrapErr maps a pgx error to the SDK's typed errors, keeping the pgx error in the
// chain.
func wrapErr(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("postgres: %s: %w: %w", what, cerr, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w: %w", what, persistence.ErrNotFound, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("postgres: %s: %w: %w", what, persistence.ErrAlreadyExists, err)
		case "23503": // foreign_key_violation: the session was deleted meanwhile
			return fmt.Errorf("postgres: %s: session: %w: %w", what, persistence.ErrNotFound, err)
		}
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// redact drops what a pgx parse error may quote of the DSN.
func redact(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "cannot parse the connection string"
	}
	return err.Error()
}
