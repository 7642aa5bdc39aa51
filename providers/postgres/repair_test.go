package postgres_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// flipLast is the SQL that flips every bit of the last byte of bytea column col,
// which breaks its CRC.
func flipLast(col string) string {
	return col + ` = set_byte(` + col + `, length(` + col + `) - 1, get_byte(` + col + `, length(` + col + `) - 1) # 255)`
}

// corrupt is the harness's Corrupt: it damages the column holding the record r
// names (see providers/postgres/migrations).
func corrupt(t testing.TB, p *persistence.Store, r persistence.BrokenRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
		t.Fatalf("corrupt: no %s records in this driver", r.Kind)
	}
	tag, err := postgres.Pool(p).Exec(ctx, sql, args...)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("corrupt %s %q: %d rows, %v", r.Kind, r.ID, tag.RowsAffected(), err)
	}
}
