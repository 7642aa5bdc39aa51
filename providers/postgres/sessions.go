package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// pageSize is how many rows an iteration reads per query: large enough that the
// round trip is amortised, small enough that a page is a small allocation.
const pageSize = 256

// pastEveryHash sorts after every SHA-256 hash.
var pastEveryHash = bytes.Repeat([]byte{0xFF}, sha256.Size+1)

// committers is how many group committers a provider runs. Measured with 64
// appenders: one committer makes the largest groups and the most appends per second;
// two or four split them into smaller groups and did worse on this machine.
const committers = 1

// show quotes an id, filter or topic for an error message, shortened: they may be
// 64 KiB long.
func show(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q…(%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func notFoundSession(id string) error {
	return fmt.Errorf("postgres: session %s: %w", show(id), driver.ErrNotFound)
}

func notFoundPacket(id string, c driver.PacketClass, seq uint64) error {
	return fmt.Errorf("postgres: session %s: %s packet %d: %w", show(id), c, seq, driver.ErrNotFound)
}

// seqArg converts a sequence number for a bigint column. Stored sequence numbers
// are positive int64s, so one beyond that range names no packet: -1 keeps the
// statement valid (and its session check) instead of failing to encode.
func seqArg(seq uint64) int64 {
	if seq > math.MaxInt64 {
		return -1
	}
	return int64(seq)
}

// ---- statements, shared by the single calls and Apply ----

func createStmt(id string, base driver.SessionBase) *stmt {
	var one int32
	return &stmt{
		what:  "create session",
		sql:   `INSERT INTO mqtt_sessions (h, id, base) VALUES ($1, $2, $3) ON CONFLICT (h) DO NOTHING RETURNING 1`,
		args:  []any{hashOf(id), []byte(id), driver.EncodeSessionBase(nil, base)},
		dest:  []any{&one},
		noRow: func() error { return fmt.Errorf("postgres: session %s: %w", show(id), driver.ErrAlreadyExists) },
	}
}

func deleteStmt(id string) *stmt {
	return &stmt{what: "delete session", sql: `DELETE FROM mqtt_sessions WHERE h = $1`, args: []any{hashOf(id)}}
}

func appendStmt(id string, class driver.PacketClass, p *driver.PersistedPacket, seq []int64) *stmt {
	s := &stmt{
		what: "append packet",
		sql: `INSERT INTO mqtt_packets (h, class, seq, blob)
			SELECT h, $2, nextval('mqtt_packet_seq'), $3 FROM mqtt_sessions WHERE h = $1 RETURNING seq`,
		args:  []any{hashOf(id), int16(class), driver.EncodePacket(nil, p)},
		dest:  []any{&seq[0]},
		noRow: func() error { return notFoundSession(id) },
	}
	h := s.args[0].([]byte)
	s.pw = &packetWrite{sessions: []string{id}, sh: [][]byte{h}, seqs: seq,
		apps: []appendOp{{h, int16(class), s.args[2].([]byte)}}}
	return s
}

// appendsStmt appends the packets of ops, all to session id, in one statement,
// numbering them in order, and stores their sequence numbers in seqs.
func appendsStmt(id string, ops []driver.Op, seqs []int64) *stmt {
	classes := make([]int16, len(ops))
	blobs := make([][]byte, len(ops))
	for i := range ops {
		classes[i] = int16(ops[i].Class)
		blobs[i] = driver.EncodePacket(nil, ops[i].Packet)
	}
	s := &stmt{
		what: "append packets",
		sql: `WITH s AS (SELECT h FROM mqtt_sessions WHERE h = $1),
			t AS (SELECT t.o, t.c, t.b FROM s, unnest($2::smallint[], $3::bytea[]) WITH ORDINALITY AS t(c, b, o) ORDER BY t.o),
			v AS (SELECT o, c, b, nextval('mqtt_packet_seq') AS seq FROM t),
			i AS (INSERT INTO mqtt_packets (h, class, seq, blob) SELECT $1, c, seq, b FROM v)
			SELECT (SELECT array_agg(seq ORDER BY o) FROM v) FROM s`,
		args:  []any{hashOf(id), classes, blobs},
		noRow: func() error { return notFoundSession(id) },
	}
	var got []int64
	s.dest = []any{&got}
	s.post = func() error {
		if len(got) != len(seqs) {
			return fmt.Errorf("postgres: append packets: %d sequence numbers for %d packets", len(got), len(seqs))
		}
		copy(seqs, got)
		return nil
	}
	return s
}

func updateStmt(id string, class driver.PacketClass, p *driver.PersistedPacket) *stmt {
	var one int32
	return &stmt{
		what:  "update packet",
		sql:   `UPDATE mqtt_packets SET blob = $4 WHERE h = $1 AND class = $2 AND seq = $3 RETURNING 1`,
		args:  []any{hashOf(id), int16(class), seqArg(p.Seq), driver.EncodePacket(nil, p)},
		dest:  []any{&one},
		noRow: func() error { return notFoundPacket(id, class, p.Seq) },
	}
}

// sessionScoped returns a statement that runs the data-modifying CTE del (which
// uses $1 as the session hash) and reports a missing session as no row: deleting a
// missing item is a no-op, but only in a session that exists.
func sessionScoped(what, id, del string, args ...any) *stmt {
	var one int32
	return &stmt{
		what:  what,
		sql:   `WITH d AS (` + del + `) SELECT 1 FROM mqtt_sessions WHERE h = $1`,
		args:  append([]any{hashOf(id)}, args...),
		dest:  []any{&one},
		noRow: func() error { return notFoundSession(id) },
	}
}

func packetDeleteStmt(id string, class driver.PacketClass, seq uint64) *stmt {
	s := sessionScoped("delete packet", id,
		`DELETE FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq = $3`, int16(class), seqArg(seq))
	h := s.args[0].([]byte)
	s.pw = &packetWrite{sessions: []string{id}, sh: [][]byte{h}, dels: []deleteOp{{h, int16(class), seqArg(seq)}}}
	return s
}

func packetsDeleteStmt(id string, classes []int16) *stmt {
	return sessionScoped("delete packets", id,
		`DELETE FROM mqtt_packets WHERE h = $1 AND class = ANY($2)`, classes)
}

func subscriptionsStoreStmt(id string, subs []driver.Subscription) *stmt {
	// ON CONFLICT may not touch a row twice in one statement: the last subscription
	// for a filter wins here, as the interface asks.
	last := make(map[string]int, len(subs))
	for i, s := range subs {
		last[s.Filter] = i
	}
	fhs := make([][]byte, 0, len(last))
	blobs := make([][]byte, 0, len(last))
	for i, s := range subs {
		if last[s.Filter] == i {
			fhs = append(fhs, hashOf(s.Filter))
			blobs = append(blobs, driver.EncodeSubscription(nil, s))
		}
	}
	var one int32
	return &stmt{
		what: "store subscriptions",
		sql: `WITH s AS (SELECT h FROM mqtt_sessions WHERE h = $1),
			i AS (INSERT INTO mqtt_subscriptions (h, fh, blob)
				SELECT s.h, t.fh, t.b FROM s, unnest($2::bytea[], $3::bytea[]) AS t(fh, b)
				ON CONFLICT (h, fh) DO UPDATE SET blob = EXCLUDED.blob)
			SELECT 1 FROM s`,
		args:  []any{hashOf(id), fhs, blobs},
		dest:  []any{&one},
		noRow: func() error { return notFoundSession(id) },
	}
}

func subscriptionsDeleteStmt(id string, filters []string) *stmt {
	fhs := make([][]byte, len(filters))
	for i, f := range filters {
		fhs[i] = hashOf(f)
	}
	return sessionScoped("delete subscriptions", id,
		`DELETE FROM mqtt_subscriptions WHERE h = $1 AND fh = ANY($2)`, fhs)
}

func subscriptionsDeleteAllStmt(id string) *stmt {
	return sessionScoped("delete all subscriptions", id, `DELETE FROM mqtt_subscriptions WHERE h = $1`)
}

// sessionUpdate returns a statement that sets columns of session id; set uses $2….
func sessionUpdate(what, id, set string, args ...any) *stmt {
	var one int32
	return &stmt{
		what:  what,
		sql:   `UPDATE mqtt_sessions SET ` + set + ` WHERE h = $1 RETURNING 1`,
		args:  append([]any{hashOf(id)}, args...),
		dest:  []any{&one},
		noRow: func() error { return notFoundSession(id) },
	}
}

func stateStoreStmt(id string, st *driver.SessionState) *stmt {
	return sessionUpdate("store state", id, `state = $2`, driver.EncodeState(nil, st))
}

func stateDeleteStmt(id string) *stmt {
	return sessionUpdate("delete state", id, `state = NULL`)
}

func expiryStoreStmt(id string, e driver.SessionExpiry) *stmt {
	if e.IsZero() {
		return expiryDeleteStmt(id)
	}
	next := e.Next()
	return sessionUpdate("store expiry", id, `expiry = $2, due_sec = $3, due_nsec = $4`,
		driver.EncodeExpiry(nil, e), next.Unix(), int32(next.Nanosecond()))
}

func expiryDeleteStmt(id string) *stmt {
	return sessionUpdate("delete expiry", id, `expiry = NULL, due_sec = NULL, due_nsec = NULL`)
}

// ---- Sessions ----

// Exists reports whether the session row exists.
func (c *conn) Exists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := c.pool.QueryRow(ctx, c.q(`SELECT EXISTS (SELECT 1 FROM mqtt_sessions WHERE h = $1)`), hashOf(id)).Scan(&ok)
	return ok, c.wrap(ctx, "session exists", err)
}

// Count counts the session rows (an index-only scan of the primary key).
func (c *conn) Count(ctx context.Context) (uint64, error) {
	var n int64
	err := c.pool.QueryRow(ctx, c.q(`SELECT count(*) FROM mqtt_sessions`)).Scan(&n)
	return uint64(n), c.wrap(ctx, "count sessions", err)
}

func decodeSubscriptions(id string, blobs [][]byte) ([]driver.Subscription, error) {
	subs := make([]driver.Subscription, 0, len(blobs))
	for _, b := range blobs {
		s, err := driver.DecodeSubscription(b)
		if err != nil {
			return nil, fmt.Errorf("postgres: subscription of session %s: %w", show(id), err)
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// ---- Subscriptions ----

// SubscriptionsLoad reads the session's subscriptions; no row means no session.
func (c *conn) SubscriptionsLoad(ctx context.Context, id string) ([]driver.Subscription, error) {
	var blobs [][]byte
	err := c.pool.QueryRow(ctx, c.q(`SELECT ARRAY(SELECT blob FROM mqtt_subscriptions WHERE h = $1)
		FROM mqtt_sessions WHERE h = $1`), hashOf(id)).Scan(&blobs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFoundSession(id)
	}
	if err != nil {
		return nil, c.wrap(ctx, "load subscriptions", err)
	}
	return decodeSubscriptions(id, blobs)
}

// ---- State ----

// StateGet reads the session's state column.
func (c *conn) StateGet(ctx context.Context, id string) (*driver.SessionState, error) {
	blob, err := c.column(ctx, id, "state")
	if err != nil {
		return nil, err
	}
	if blob == nil {
		return nil, fmt.Errorf("postgres: state of session %s: %w", show(id), driver.ErrNotFound)
	}
	st, err := driver.DecodeState(blob)
	if err != nil {
		return nil, fmt.Errorf("postgres: state of session %s: %w", show(id), err)
	}
	return st, nil
}

// column reads one bytea column of the session row (a fixed column name, never
// input).
func (c *conn) column(ctx context.Context, id, col string) ([]byte, error) {
	var blob []byte
	err := c.pool.QueryRow(ctx, c.q(`SELECT `+col+` FROM mqtt_sessions WHERE h = $1`), hashOf(id)).Scan(&blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFoundSession(id)
	}
	if err != nil {
		return nil, c.wrap(ctx, "read "+col, err)
	}
	return blob, nil
}

// ---- Expiry ----

// ExpiryGet reads the expiry blob.
func (c *conn) ExpiryGet(ctx context.Context, id string) (driver.SessionExpiry, error) {
	blob, err := c.column(ctx, id, "expiry")
	if err != nil {
		return driver.SessionExpiry{}, err
	}
	if blob == nil {
		return driver.SessionExpiry{}, fmt.Errorf("postgres: expiry of session %s: %w", show(id), driver.ErrNotFound)
	}
	e, err := driver.DecodeExpiry(blob)
	if err != nil {
		return driver.SessionExpiry{}, fmt.Errorf("postgres: expiry of session %s: %w", show(id), err)
	}
	return e, nil
}

// ExpiredForEach walks the partial index on the next deadline from the earliest,
// a page at a time, up to now; fn runs with no connection held.
func (c *conn) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	type row struct {
		sec    int64
		nsec   int32
		h, id  []byte
		expiry []byte
	}
	var (
		lastSec  int64 = math.MinInt64
		lastNsec int32 = -1
		lastH          = []byte{}
		page           = make([]row, 0, pageSize)
	)
	for {
		page = page[:0]
		rows, err := c.pool.Query(ctx, c.q(`SELECT due_sec, due_nsec, h, id, expiry FROM mqtt_sessions
			WHERE due_sec IS NOT NULL AND (due_sec, due_nsec, h) > ($1, $2, $3) AND (due_sec, due_nsec) <= ($4, $5)
			ORDER BY due_sec, due_nsec, h LIMIT $6`),
			lastSec, lastNsec, lastH, now.Unix(), int32(now.Nanosecond()), pageSize)
		if err != nil {
			return c.wrap(ctx, "expired sessions", err)
		}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.sec, &r.nsec, &r.h, &r.id, &r.expiry); err != nil {
				rows.Close()
				return c.wrap(ctx, "expired sessions", err)
			}
			page = append(page, r)
		}
		if err := rows.Err(); err != nil {
			return c.wrap(ctx, "expired sessions", err)
		}
		for i := range page {
			r := &page[i]
			id := string(r.id)
			e, err := driver.DecodeExpiry(r.expiry)
			if err != nil {
				return fmt.Errorf("postgres: expiry of session %s: %w", show(id), err)
			}
			if !e.Due(now) {
				continue // the index column and the blob disagree only if tampered with
			}
			if err := fn(id, e); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		r := page[len(page)-1]
		lastSec, lastNsec, lastH = r.sec, r.nsec, r.h
	}
}
