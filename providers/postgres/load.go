package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// loadBudget is the default of conn.loadBudget: about how many bytes of table
// heap (sessions and subscriptions together) LoadForEach reads per range of
// session hashes. A session's subscription rows lie wherever they were written,
// not next to each other, so every range reads about every page of the
// subscriptions table whatever its width: the fewer the ranges, the fewer
// whole-table reads. A range's sessions are decoded and held before they are
// handed out, in memory of about the size of the heap they came from, which a
// broker restoring them keeps anyway.
const loadBudget = 128 << 20

// LoadForEach reads every session with its subscriptions. A store whose two
// tables fit in the load budget is read in one pipelined batch of two sequential
// scans, the sessions and the subscriptions, joined in memory; a larger one by
// ranges of the session hash (see hashRanges), each the same two queries
// restricted to the range. Rows are decoded straight from the connection's
// buffers. fn runs with no connection held.
func (c *conn) LoadForEach(ctx context.Context, fn driver.SessionLoader) error {
	var heap int64
	err := c.pool.QueryRow(ctx, `SELECT pg_relation_size($1::regclass) + pg_relation_size($2::regclass)`,
		pgx.Identifier{c.schema, "mqtt_sessions"}.Sanitize(), pgx.Identifier{c.schema, "mqtt_subscriptions"}.Sanitize()).Scan(&heap)
	if err != nil {
		return c.wrap(ctx, "load sessions", err)
	}
	ranges := max(1, (heap+c.loadBudget-1)/c.loadBudget)
	pg := loadPage{at: make(map[string]int32)}
	var hr *hashRanges
	if ranges == 1 {
		hr = newHashRanges(1, 1) // one range over every hash
	} else {
		var total int64
		if err := c.pool.QueryRow(ctx, c.q(`SELECT count(*) FROM mqtt_sessions`)).Scan(&total); err != nil {
			return c.wrap(ctx, "load sessions", err)
		}
		hr = newHashRanges(total, int((total+ranges-1)/ranges))
	}
	for !hr.done() {
		lo, hi := hr.next()
		var b pgx.Batch
		if ranges == 1 {
			b.Queue(c.q(`SELECT h, id, base, state, expiry FROM mqtt_sessions`))
			b.Queue(c.q(`SELECT h, blob FROM mqtt_subscriptions`))
		} else {
			b.Queue(c.q(`SELECT h, id, base, state, expiry FROM mqtt_sessions WHERE h >= $1 AND h < $2`), lo, hi)
			b.Queue(c.q(`SELECT h, blob FROM mqtt_subscriptions WHERE h >= $1 AND h < $2`), lo, hi)
		}
		if err := pg.read(ctx, c.pool.SendBatch(ctx, &b)); err != nil {
			return c.wrap(ctx, "load sessions", err)
		}
		hr.seen(len(pg.sessions))
		for i, ls := range pg.sessions {
			if pg.errs[i] != nil {
				return pg.errs[i]
			}
			if err := fn(ls); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadPage is one range of sessions read by LoadForEach, reused from range to range.
type loadPage struct {
	sessions []*driver.LoadedSession
	errs     []error          // per session: why it cannot be decoded, or nil
	at       map[string]int32 // session hash → index in sessions
	subs     [][]ownedSub     // the subscriptions read, in chunks of subChunk
	nsubs    int
}

// ownedSub is a subscription read and the index of its session in the page.
type ownedSub struct {
	owner int32
	sub   driver.Subscription
}

// subChunk is how many subscriptions a chunk of loadPage.subs holds: reading
// hundreds of thousands into chunks copies none of them as the page grows.
const subChunk = 4096

// add appends a subscription of session i.
func (pg *loadPage) add(i int32, s driver.Subscription) {
	k := pg.nsubs / subChunk
	if k == len(pg.subs) {
		pg.subs = append(pg.subs, make([]ownedSub, subChunk))
	}
	pg.subs[k][pg.nsubs%subChunk] = ownedSub{i, s}
	pg.nsubs++
}

// read fills the page from the results of a batch of two queries: sessions (h, id,
// base, state, expiry), then subscriptions (h, blob).
func (pg *loadPage) read(ctx context.Context, br pgx.BatchResults) error {
	defer br.Close()
	clear(pg.sessions)
	pg.sessions, pg.errs = pg.sessions[:0], pg.errs[:0]
	pg.nsubs = 0
	clear(pg.at)
	rows, _ := br.Query()
	var h, id, base, state, expiry pgtype.DriverBytes
	for rows.Next() {
		if err := rows.Scan(&h, &id, &base, &state, &expiry); err != nil {
			rows.Close()
			return err
		}
		ls, err := decodeSession(id, base, state, expiry)
		pg.at[string(h)] = int32(len(pg.sessions))
		pg.sessions = append(pg.sessions, ls)
		pg.errs = append(pg.errs, err)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// Subscriptions of a session created between the two queries have no session
	// in the page and are skipped, as are those of a session that cannot be decoded.
	var blob pgtype.DriverBytes
	rows, _ = br.Query()
	for rows.Next() {
		if err := rows.Scan(&h, &blob); err != nil {
			rows.Close()
			return err
		}
		i, ok := pg.at[string(h)]
		if !ok || pg.errs[i] != nil {
			continue
		}
		s, err := driver.DecodeSubscription(blob)
		if err != nil {
			pg.errs[i] = fmt.Errorf("postgres: subscription of session %s: %w", show(pg.sessions[i].ID), err)
			continue
		}
		pg.add(i, s)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}
	pg.group()
	return ctx.Err()
}

// group hands each session of the page its subscriptions: one array for the
// page, cut by session (a counting sort on owners), each session's part capped so
// that appending to it cannot write into the next.
func (pg *loadPage) group() {
	start := make([]int, len(pg.sessions)+1)
	pg.eachSub(func(o *ownedSub) { start[o.owner+1]++ })
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	all := make([]driver.Subscription, pg.nsubs)
	next := append([]int(nil), start[:len(pg.sessions)]...)
	pg.eachSub(func(o *ownedSub) {
		all[next[o.owner]] = o.sub
		next[o.owner]++
		o.sub = driver.Subscription{} // the page keeps no filter strings alive
	})
	for i, ls := range pg.sessions {
		ls.Subscriptions = all[start[i]:start[i+1]:start[i+1]]
	}
}

// eachSub calls fn for each subscription read, in order.
func (pg *loadPage) eachSub(fn func(*ownedSub)) {
	for k := 0; k*subChunk < pg.nsubs; k++ {
		for j := range min(subChunk, pg.nsubs-k*subChunk) {
			fn(&pg.subs[k][j])
		}
	}
}

// decodeSession decodes one session row; nil state and expiry are NULL columns.
// It never keeps a reference to its arguments.
func decodeSession(id, base, state, expiry []byte) (*driver.LoadedSession, error) {
	ls := &driver.LoadedSession{ID: string(id)}
	var err error
	if ls.Base, err = driver.DecodeSessionBase(base); err != nil {
		return ls, fmt.Errorf("postgres: session %s: %w", show(ls.ID), err)
	}
	if state != nil {
		if ls.State, err = driver.DecodeState(state); err != nil {
			return ls, fmt.Errorf("postgres: state of session %s: %w", show(ls.ID), err)
		}
	}
	if expiry != nil {
		e, err := driver.DecodeExpiry(expiry)
		if err != nil {
			return ls, fmt.Errorf("postgres: expiry of session %s: %w", show(ls.ID), err)
		}
		ls.Expiry = &e
	}
	return ls, nil
}
