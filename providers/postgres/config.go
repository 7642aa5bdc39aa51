package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/internal/groupcommit"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Driver is the PostgreSQL [driver.Driver], registered as "postgres" and
// "postgresql".
type Driver struct{}

// OpenConnector parses u as [ParseConfig] does.
func (Driver) OpenConnector(u *url.URL) (driver.Connector, error) {
	return parseURL(u)
}

// Config is the driver's typed configuration, as pgxpool.Config is pgx's: build one
// with [ParseConfig] from a URL, or directly around a pool you already have,
// adjust it, and open a store with persistence.OpenConnector:
//
//	s, err := persistence.OpenConnector(ctx, &postgres.Config{Pool: pool, Schema: "mqtt"})
//
// It implements [driver.Connector].
type Config struct {
	// Pool, when not nil, is the pool the store runs on, used as it is (its size,
	// timeouts and session settings are the caller's), and left open by the
	// store's Close. PoolConfig is then ignored.
	Pool *pgxpool.Pool
	// PoolConfig describes the pool Connect makes when Pool is nil; it must come
	// from pgxpool.ParseConfig (or [ParseConfig]), as pgxpool requires. The store's
	// Close closes that pool.
	PoolConfig *pgxpool.Config
	// Schema is the PostgreSQL schema holding the tables, created if missing
	// ("public" when empty).
	Schema string
	// NoGroupCommit sends each concurrent single write on its own instead of
	// merging them into shared transactions.
	NoGroupCommit bool

	// secrets are the DSN's password and secret options, removed from error
	// messages.
	secrets []string
}

var _ driver.Connector = (*Config)(nil)

// passThrough lists the libpq options handed to pgx unchanged.
var passThrough = []string{
	"password", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword",
	"application_name", "target_session_attrs",
}

// ParseConfig parses a postgres:// (or postgresql://) URL, without any I/O, into a
// Config with a PoolConfig. Its query options are the driver's:
//
//   - schema: the PostgreSQL schema holding the tables (default "public").
//   - max_conns (alias pool_max_conns): pool size, 1..1000 (default 8).
//   - connect_timeout: seconds ("10") or a Go duration ("2s"); default 10s.
//   - synchronous_commit: on, off, local, remote_write or remote_apply, set on
//     every connection (default: the server's setting).
//   - group_commit: true (default) or false (see [Config.NoGroupCommit]).
//   - password, sslmode, sslrootcert, sslcert, sslkey, sslpassword, application_name,
//     target_session_attrs: handed to pgx unchanged.
//
// Anything else is refused with an error matching [persistence.ErrInvalidConfig]
// that names the option. No error shows the URL's password or secret options.
func ParseConfig(dsn string) (*Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		reason := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = ue.Err.Error() // ue's message quotes the URL
		}
		return nil, fmt.Errorf("%w: cannot parse PostgreSQL URL %s: %s (a password with '/', '?', '#' or '@' must be percent-encoded)",
			driver.ErrInvalidConfig, persistence.Redact(dsn), scrubGuess(reason, dsn))
	}
	switch strings.ToLower(u.Scheme) {
	case "postgres", "postgresql":
	default:
		return nil, fmt.Errorf("%w: %s is not a postgres:// URL", driver.ErrInvalidConfig, persistence.Redact(dsn))
	}
	return parseURL(u)
}

func parseURL(u *url.URL) (*Config, error) {
	o := driver.NewOptions(u.Query())
	schema := o.String("schema", "public")
	syncCommit := o.Enum("synchronous_commit", "", "on", "off", "local", "remote_write", "remote_apply")
	groupCommit := o.Bool("group_commit", true)
	maxConns := o.Int("max_conns", 8, 1, 1000)
	if o.Has("pool_max_conns") {
		if o.Has("max_conns") {
			return nil, fmt.Errorf("%w: give max_conns or pool_max_conns, not both", driver.ErrInvalidConfig)
		}
		maxConns = o.Int("pool_max_conns", 8, 1, 1000)
	}
	var badTimeout error
	connectTimeout := 10 * time.Second
	if v := o.String("connect_timeout", ""); v != "" {
		connectTimeout, badTimeout = parseTimeout(v)
	} else if o.Has("connect_timeout") {
		badTimeout = fmt.Errorf("%w: option \"connect_timeout\" is empty", driver.ErrInvalidConfig)
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
	if err := checkSchemaName(schema); err != nil {
		return nil, err
	}
	// pgx reads only its own options from the query; ours are stripped so that it
	// never sees (and never rejects or silently ignores) them.
	pu := *u
	pu.Scheme = "postgres"
	pu.RawQuery = keep.Encode()
	pu.Fragment = ""
	pgxDSN := pu.String()
	secrets := secretsOf(u.String())
	secrets = append(secrets, secretsOf(pgxDSN)...)
	pc, err := pgxpool.ParseConfig(pgxDSN)
	if err != nil {
		return nil, fmt.Errorf("%w: PostgreSQL URL %s not accepted by pgx: %s", driver.ErrInvalidConfig,
			persistence.Redact(u.String()), pgxReason(err, secrets))
	}
	pc.MaxConns = int32(maxConns)
	pc.ConnConfig.ConnectTimeout = connectTimeout
	if syncCommit != "" {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = syncCommit
	}
	// Connections that sat idle may have died with a restarted server; a ping before
	// reuse keeps a stale connection from failing the caller's first query.
	pc.HealthCheckPeriod = 5 * time.Second
	return &Config{PoolConfig: pc, Schema: schema, NoGroupCommit: !groupCommit, secrets: secrets}, nil
}

// parseTimeout reads libpq's whole seconds ("10") or a Go duration ("2s").
func parseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || n > 3600 {
			return 0, fmt.Errorf("%w: option \"connect_timeout\": %q is not in 1..3600 seconds", driver.ErrInvalidConfig, v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > time.Hour {
		return 0, fmt.Errorf("%w: option \"connect_timeout\": %q is neither whole seconds nor a positive duration such as 2s", driver.ErrInvalidConfig, v)
	}
	return d, nil
}

func checkSchemaName(s string) error {
	if s == "" || len(s) > 63 || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: option \"schema\": %q is not a PostgreSQL identifier (1..63 bytes, no NUL)", driver.ErrInvalidConfig, s)
	}
	return nil
}

// Connect opens the pool (unless c.Pool is set), creates or migrates the schema
// and returns the store.
func (c *Config) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	schema := c.Schema
	if schema == "" {
		schema = "public"
	}
	if err := checkSchemaName(schema); err != nil {
		return nil, err
	}
	secrets := c.secrets
	pool, own := c.Pool, false
	if pool == nil {
		if c.PoolConfig == nil {
			return nil, fmt.Errorf("%w: postgres.Config has neither Pool nor PoolConfig (use postgres.ParseConfig)", driver.ErrInvalidConfig)
		}
		pc := c.PoolConfig.Copy()
		secrets = append(secrets, configSecrets(pc.ConnConfig)...)
		// Statements name their schema; the search_path is for whoever uses this
		// pool directly (the driver's tests).
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
		var err error
		if pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			return nil, scrub(wrapErr(ctx, "open", err), secrets)
		}
		own = true
	} else {
		secrets = append(secrets, configSecrets(pool.Config().ConnConfig)...)
	}
	cn := &conn{pool: pool, ownPool: own, schema: schema, env: env, secrets: secrets, qual: newQualifier(schema), loadBudget: loadBudget, statsPage: statsPage}
	if err := cn.migrate(ctx); err != nil {
		if own {
			pool.Close()
		}
		return nil, scrub(err, secrets)
	}
	if !c.NoGroupCommit {
		cn.committers = make([]*groupcommit.Committer[*stmt], committers)
		for i := range cn.committers {
			cn.committers[i] = groupcommit.New(cn.commitGroup, 256)
		}
	}
	return cn, nil
}

// configSecrets returns the password of cc.
func configSecrets(cc *pgx.ConnConfig) []string {
	if cc.Password == "" {
		return nil
	}
	return []string{cc.Password}
}

// secretsOf returns the password and secret option values of a URL, as they are
// and in their escaped forms.
func secretsOf(dsn string) []string {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil
	}
	var out []string
	add := func(v string) {
		if v != "" {
			out = append(out, v, url.QueryEscape(v), url.PathEscape(v))
		}
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			add(p)
			if _, raw, ok := strings.Cut(u.User.String(), ":"); ok {
				add(raw)
			}
		}
	}
	for k, vs := range u.Query() {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			for _, v := range vs {
				add(v)
			}
		}
	}
	return out
}

// pgxReason returns why pgx refused a connection string, without the string
// itself (which its message quotes) and without any secret.
func pgxReason(err error, secrets []string) string {
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// "cannot parse `<dsn>`: <reason>"
		if i := strings.Index(msg, "`: "); i >= 0 {
			msg = msg[i+3:]
		}
	}
	return scrubString(msg, secrets)
}

// scrubString replaces every secret in s, longest first.
func scrubString(s string, secrets []string) string {
	for {
		best := ""
		for _, sec := range secrets {
			if len(sec) > len(best) && strings.Contains(s, sec) {
				best = sec
			}
		}
		if best == "" {
			return s
		}
		s = strings.ReplaceAll(s, best, "xxxxx")
	}
}

// scrubGuess removes from the message of an unparsable URL's error every piece of
// what looks like the URL's user information (the text between "://" and the
// last '@'), since a password that breaks parsing cannot be told apart reliably.
func scrubGuess(msg, dsn string) string {
	at := strings.LastIndex(dsn, "@")
	if at < 0 {
		return msg
	}
	info := dsn[:at]
	if i := strings.Index(info, "://"); i >= 0 {
		info = info[i+3:]
	}
	var pieces []string
	if _, pw, ok := strings.Cut(info, ":"); ok {
		pieces = append(pieces, pw)
		for _, f := range strings.FieldsFunc(pw, func(r rune) bool { return strings.ContainsRune(":/?#[]@", r) }) {
			if len(f) >= 2 {
				pieces = append(pieces, f)
			}
		}
	}
	return scrubString(msg, pieces)
}

// scrubbed is an error whose message has secrets removed; it still matches
// everything the original matched.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// scrub returns err with every secret removed from its message.
func scrub(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	msg := err.Error()
	if out := scrubString(msg, secrets); out != msg {
		return &scrubbed{msg: out, err: err}
	}
	return err
}
