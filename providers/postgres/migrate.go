package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one embedded migrations/NNNN_name.sql file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. The files are part
// of the binary, so a malformed name is a build defect reported as an error.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("postgres: embedded migration %q is not numbered %04d_name.sql", e.Name(), len(ms)+1)
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	return ms, nil
}

// LatestMigration is the schema version this driver migrates a database to.
func LatestMigration() int {
	ms, _ := migrations()
	return len(ms)
}

// advisoryKey is the lock key for migrating schema: one per schema, so that stores in
// different schemas of one database never wait for each other.
func advisoryKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("mqttstore/postgres/migrate\x00" + schema))
	return int64(h.Sum64())
}

// migrate creates the schema if needed and applies the missing migrations, all in
// one transaction holding a transaction-scoped advisory lock, so that two brokers
// opening the same schema at once apply each migration exactly once. The version
// table records every applied migration; a database that has versions this driver
// does not know is refused.
func (c *conn) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return wrapErr(ctx, "migrate: begin", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, advisoryKey(c.schema)); err != nil {
		return wrapErr(ctx, "migrate: advisory lock", err)
	}
	ident := pgx.Identifier{c.schema}.Sanitize()
	// The pool's search_path named the schema before it existed; SET LOCAL makes the
	// new schema current for the unqualified names of the migrations.
	stmts := []string{
		`CREATE SCHEMA IF NOT EXISTS ` + ident,
		`SET LOCAL search_path TO ` + ident,
		`CREATE TABLE IF NOT EXISTS mqtt_schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return wrapErr(ctx, "migrate: prepare schema "+strconv.Quote(c.schema), err)
		}
	}
	rows, err := tx.Query(ctx, `SELECT version FROM mqtt_schema_migrations ORDER BY version`)
	if err != nil {
		return wrapErr(ctx, "migrate: read versions", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return wrapErr(ctx, "migrate: read versions", err)
	}
	if n := len(applied); n > 0 && int(applied[n-1]) > len(ms) {
		return fmt.Errorf("%w: postgres schema %q is at migration %d, this driver (SDK v%s) knows up to %d; upgrade the SDK",
			driver.ErrSchemaVersion, c.schema, applied[n-1], driver.SDKVersion, len(ms))
	}
	for _, m := range ms {
		if slices.Contains(applied, int32(m.version)) {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return wrapErr(ctx, "migrate: apply "+m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mqtt_schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return wrapErr(ctx, "migrate: record "+m.name, err)
		}
	}
	info := driver.SystemInfo{
		SchemaVersion: driver.SchemaVersion,
		CreatedAt:     c.env.Clock.Now(),
		SDKVersion:    driver.SDKVersion,
		Driver:        Name,
	}
	var blob []byte
	err = tx.QueryRow(ctx, `INSERT INTO mqtt_system (id, info) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET info = mqtt_system.info RETURNING info`,
		driver.EncodeSystemInfo(nil, info)).Scan(&blob)
	if err != nil {
		return wrapErr(ctx, "migrate: system info", err)
	}
	stored, err := driver.DecodeSystemInfo(blob)
	if err != nil {
		return fmt.Errorf("postgres: system info: %w", err)
	}
	if err := driver.CheckSchema(stored.SchemaVersion); err != nil {
		return fmt.Errorf("postgres: schema %q: %w", c.schema, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrapErr(ctx, "migrate: commit", err)
	}
	return nil
}
