package postgres

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Repair (driver.RepairConn). Every count of this driver is a count(*) of rows and
// no row can lose its session (foreign keys), so the only derived data is the due
// time of each session (due_sec, due_nsec), read by ExpiredForEach and computed
// from its expiry blob. The broken records are blobs that do not decode; each is
// addressed by its row's primary key.

// repairPage is the number of rows one query of a repair scan reads.
const repairPage = 1000

// scanRows runs query (keyset-paginated: it takes the page's last key and
// repairPage, and returns rows in key order) until a page comes back short; visit
// reads one row and returns its key, and emit runs after each page with no
// connection held.
func (c *conn) scanRows(ctx context.Context, what, query string, first []any, visit func(rows pgx.Rows) ([]any, error), emit func() error) error {
	last := first
	for {
		n := 0
		rows, err := c.pool.Query(ctx, c.q(query), append(last, repairPage)...)
		if err != nil {
			return c.wrap(ctx, what, err)
		}
		for rows.Next() {
			n++
			if last, err = visit(rows); err != nil {
				rows.Close()
				return c.wrap(ctx, what, err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return c.wrap(ctx, what, err)
		}
		if err := emit(); err != nil {
			return err
		}
		if n < repairPage {
			return nil
		}
	}
}

// BrokenForEach reads every session, subscription, packet and retained row and
// reports the blobs that do not decode. The Key of a session, state or expiry is
// the session's hash; of a subscription, the session's hash then the filter's; of
// a packet, the session's hash (Class and Seq complete it); of a retained message,
// the topic's hash.
func (c *conn) BrokenForEach(ctx context.Context, fn func(r *driver.BrokenRecord) error) error {
	var found []*driver.BrokenRecord
	emit := func() error {
		page := found
		found = nil
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	report := func(kind driver.RecordKind, id, key, raw []byte, err error) *driver.BrokenRecord {
		r := &driver.BrokenRecord{Kind: kind, ID: string(id), Key: key, Raw: raw,
			Err: fmt.Errorf("postgres: %s of session %s: %w", kind, show(string(id)), err)}
		found = append(found, r)
		return r
	}
	none := []byte{}
	err := c.scanRows(ctx, "repair: read sessions",
		`SELECT h, id, base, state, expiry FROM mqtt_sessions WHERE h > $1 ORDER BY h LIMIT $2`, []any{none},
		func(rows pgx.Rows) ([]any, error) {
			var h, id, base, state, expiry []byte
			if err := rows.Scan(&h, &id, &base, &state, &expiry); err != nil {
				return nil, err
			}
			if _, err := driver.DecodeSessionBase(base); err != nil {
				report(driver.RecordSession, id, h, base, err).Err = fmt.Errorf("postgres: session %s: %w", show(string(id)), err)
			}
			if _, err := driver.DecodeState(state); state != nil && err != nil {
				report(driver.RecordState, id, h, state, err)
			}
			if _, err := driver.DecodeExpiry(expiry); expiry != nil && err != nil {
				report(driver.RecordExpiry, id, h, expiry, err)
			}
			return []any{h}, nil
		}, emit)
	if err != nil {
		return err
	}
	err = c.scanRows(ctx, "repair: read subscriptions",
		`SELECT s.h, s.fh, s.blob, m.id FROM mqtt_subscriptions s JOIN mqtt_sessions m ON m.h = s.h
			WHERE (s.h, s.fh) > ($1, $2) ORDER BY s.h, s.fh LIMIT $3`, []any{none, none},
		func(rows pgx.Rows) ([]any, error) {
			var h, fh, blob, id []byte
			if err := rows.Scan(&h, &fh, &blob, &id); err != nil {
				return nil, err
			}
			if _, err := driver.DecodeSubscription(blob); err != nil {
				report(driver.RecordSubscription, id, append(bytes.Clone(h), fh...), blob, err)
			}
			return []any{h, fh}, nil
		}, emit)
	if err != nil {
		return err
	}
	err = c.scanRows(ctx, "repair: read packets",
		`SELECT p.h, p.class, p.seq, p.blob, m.id FROM mqtt_packets p JOIN mqtt_sessions m ON m.h = p.h
			WHERE (p.h, p.class, p.seq) > ($1, $2, $3) ORDER BY p.h, p.class, p.seq LIMIT $4`, []any{none, int16(0), int64(0)},
		func(rows pgx.Rows) ([]any, error) {
			var (
				h, blob, id []byte
				class       int16
				seq         int64
			)
			if err := rows.Scan(&h, &class, &seq, &blob, &id); err != nil {
				return nil, err
			}
			if _, err := driver.DecodePacket(blob); err != nil {
				cl := driver.PacketClass(class)
				r := report(driver.RecordPacket, id, h, blob, err)
				r.Class, r.Seq = cl, uint64(seq)
				r.Err = fmt.Errorf("postgres: session %s: %s packet %d: %w", show(string(id)), cl, seq, err)
			}
			return []any{h, class, seq}, nil
		}, emit)
	if err != nil {
		return err
	}
	return c.scanRows(ctx, "repair: read retained",
		`SELECT th, topic, blob FROM mqtt_retained WHERE th > $1 ORDER BY th LIMIT $2`, []any{none},
		func(rows pgx.Rows) ([]any, error) {
			var th, topic, blob []byte
			if err := rows.Scan(&th, &topic, &blob); err != nil {
				return nil, err
			}
			if _, err := driver.DecodePacket(blob); err != nil {
				r := report(driver.RecordRetained, nil, th, blob, err)
				r.Name = string(topic)
				r.Err = fmt.Errorf("postgres: retained message on %s: %w", show(r.Name), err)
			}
			return []any{th}, nil
		}, emit)
}

// BrokenDelete removes the row (or clears the column) r names, on the condition
// that it still holds r.Raw. Deleting a session row cascades to its subscriptions
// and packets.
func (c *conn) BrokenDelete(ctx context.Context, r *driver.BrokenRecord) error {
	var (
		sql  string
		args []any
	)
	switch r.Kind {
	case driver.RecordSession:
		sql, args = `DELETE FROM mqtt_sessions WHERE h = $1 AND base = $2`, []any{r.Key, r.Raw}
	case driver.RecordState:
		sql, args = `UPDATE mqtt_sessions SET state = NULL WHERE h = $1 AND state = $2`, []any{r.Key, r.Raw}
	case driver.RecordExpiry:
		sql, args = `UPDATE mqtt_sessions SET expiry = NULL, due_sec = NULL, due_nsec = NULL WHERE h = $1 AND expiry = $2`, []any{r.Key, r.Raw}
	case driver.RecordSubscription:
		if len(r.Key) != 2*32 {
			return fmt.Errorf("postgres: broken subscription key of %d bytes: %w", len(r.Key), driver.ErrNotFound)
		}
		sql, args = `DELETE FROM mqtt_subscriptions WHERE h = $1 AND fh = $2 AND blob = $3`, []any{r.Key[:32], r.Key[32:], r.Raw}
	case driver.RecordPacket:
		sql, args = `DELETE FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq = $3 AND blob = $4`, []any{r.Key, int16(r.Class), seqArg(r.Seq), r.Raw}
	case driver.RecordRetained:
		sql, args = `DELETE FROM mqtt_retained WHERE th = $1 AND blob = $2`, []any{r.Key, r.Raw}
	default:
		return fmt.Errorf("postgres: broken %s: %w (this driver keeps no such record)", r.Kind, driver.ErrNotFound)
	}
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	tag, err := c.pool.Exec(ctx, c.q(sql), args...)
	if err != nil {
		return c.wrap(ctx, "repair: remove broken "+r.Kind.String(), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: broken %s of session %s: %w (removed or rewritten since it was read)", r.Kind, show(r.ID), driver.ErrNotFound)
	}
	return nil
}

// Rebuild recomputes every session's due time from its expiry blob and corrects
// the rows that disagree (a broken blob is left to BrokenForEach).
func (c *conn) Rebuild(ctx context.Context) ([]driver.Fix, error) {
	type wrong struct {
		h, id, expiry []byte
		sec           *int64
		nsec          *int32
	}
	var todo []wrong
	err := c.scanRows(ctx, "repair: read due times",
		`SELECT h, id, expiry, due_sec, due_nsec FROM mqtt_sessions WHERE h > $1 ORDER BY h LIMIT $2`, []any{[]byte{}},
		func(rows pgx.Rows) ([]any, error) {
			var (
				w        wrong
				sec      *int64
				nsec     *int32
				wantSec  *int64
				wantNsec *int32
			)
			if err := rows.Scan(&w.h, &w.id, &w.expiry, &sec, &nsec); err != nil {
				return nil, err
			}
			if w.expiry != nil {
				e, err := driver.DecodeExpiry(w.expiry)
				if err != nil {
					return []any{w.h}, nil
				}
				if !e.IsZero() {
					next := e.Next()
					s, n := next.Unix(), int32(next.Nanosecond())
					wantSec, wantNsec = &s, &n
				}
			}
			if !sameInt(sec, wantSec) || !sameInt(nsec, wantNsec) {
				w.sec, w.nsec = wantSec, wantNsec
				todo = append(todo, w)
			}
			return []any{w.h}, nil
		}, func() error { return nil })
	if err != nil {
		return nil, err
	}
	var fixes []driver.Fix
	for _, w := range todo {
		if err := c.beginWrite(); err != nil {
			return fixes, err
		}
		tag, err := c.pool.Exec(ctx, c.q(`UPDATE mqtt_sessions SET due_sec = $2, due_nsec = $3
			WHERE h = $1 AND expiry IS NOT DISTINCT FROM $4`), w.h, w.sec, w.nsec, w.expiry)
		c.endWrite()
		if err != nil {
			return fixes, c.wrap(ctx, "repair: write due time", err)
		}
		if tag.RowsAffected() > 0 {
			fixes = append(fixes, driver.Fix{Where: fmt.Sprintf("due time of session %s", show(string(w.id))),
				Detail: "did not match the session's deadlines: written again"})
		}
	}
	return fixes, nil
}

func sameInt[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

var _ driver.RepairConn = (*conn)(nil)
