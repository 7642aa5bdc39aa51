package pgtest

import (
	"context"
	"crypto/sha256"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence"
)

// Exec runs sql on the schema of dsn (a DSN returned by [DSN]): table names in sql
// are resolved in that schema. It fails t on error and returns the rows affected.
func Exec(t testing.TB, dsn, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("pgtest: bad DSN: %v", err)
	}
	q := u.Query()
	schema := q.Get("schema")
	q.Del("schema")
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if schema != "" {
		if _, err := conn.Exec(ctx, `SET search_path TO `+pgx.Identifier{schema}.Sanitize()); err != nil {
			t.Fatalf("pgtest: set search_path: %v", err)
		}
	}
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
	return tag.RowsAffected()
}

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// flipLast is the SQL that flips every bit of the last byte of bytea column col,
// which breaks its CRC.
func flipLast(col string) string {
	return col + ` = set_byte(` + col + `, length(` + col + `) - 1, get_byte(` + col + `, length(` + col + `) - 1) # 255)`
}

// Corrupt damages, in the postgres driver's store at dsn, the column holding the
// record r names (r.Kind and r.ID; r.Class and r.Seq of a packet; r.Name, the
// filter or topic, of a subscription or retained message; see
// providers/postgres/migrations), so that it no longer decodes. It is the postgres
// conformance harness's Corrupt and a helper of the tool's repair tests.
func Corrupt(t testing.TB, dsn string, r persistence.BrokenRecord) {
	t.Helper()
	var (
		sql  string
		args []any
	)
	switch r.Kind {
	case persistence.RecordSession:
		sql, args = `UPDATE mqtt_sessions SET `+flipLast("base")+` WHERE h = $1`, []any{sum(r.ID)}
	case persistence.RecordState:
		sql, args = `UPDATE mqtt_sessions SET `+flipLast("state")+` WHERE h = $1 AND state IS NOT NULL`, []any{sum(r.ID)}
	case persistence.RecordExpiry:
		sql, args = `UPDATE mqtt_sessions SET `+flipLast("expiry")+` WHERE h = $1 AND expiry IS NOT NULL`, []any{sum(r.ID)}
	case persistence.RecordSubscription:
		sql, args = `UPDATE mqtt_subscriptions SET `+flipLast("blob")+` WHERE h = $1 AND fh = $2`, []any{sum(r.ID), sum(r.Name)}
	case persistence.RecordPacket:
		sql, args = `UPDATE mqtt_packets SET `+flipLast("blob")+` WHERE h = $1 AND class = $2 AND seq = $3`, []any{sum(r.ID), int16(r.Class), int64(r.Seq)}
	case persistence.RecordRetained:
		sql, args = `UPDATE mqtt_retained SET `+flipLast("blob")+` WHERE th = $1`, []any{sum(r.Name)}
	default:
		t.Fatalf("pgtest: corrupt: the postgres driver has no %s records", r.Kind)
	}
	if n := Exec(t, dsn, sql, args...); n != 1 {
		t.Fatalf("pgtest: corrupt %s %q: %d rows changed, want 1", r.Kind, r.ID, n)
	}
}
