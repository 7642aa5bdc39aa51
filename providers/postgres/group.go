package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mqttstore/mqttstore/internal/groupcommit"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// stmt is one single-statement write. Its SQL returns at most one row, and no row is
// how it reports its own failure (a missing session, an existing one): expected
// failures are results, not SQL errors, so a group of statements from different
// callers never aborts because one caller's operation "failed". What an SQL error
// means is decided by the caller of run.
type stmt struct {
	what string
	sql  string
	args []any
	// dest receives the row; nil means the statement returns no rows (Exec).
	dest []any
	// noRow makes the operation's error when the statement returns no row (lazily:
	// formatting it costs more than the common success).
	noRow func() error
	// post, when set, runs after the statement returned its row; its error is the
	// operation's.
	post func() error
	// app is set for a PacketAppend: the group committer merges the appends of a
	// group into one multi-row INSERT.
	app *appendOp
}

// appendOp is a PacketAppend's values, for merging.
type appendOp struct {
	h     []byte
	class int16
	blob  []byte
	seq   *int64
}

// result maps Scan's error: no row is the operation's own failure; anything else is
// an SQL or connection error.
func (s *stmt) result(err error) (opErr error, sqlErr error) {
	switch {
	case err == nil:
		if s.post != nil {
			return s.post(), nil
		}
		return nil, nil
	case errors.Is(err, pgx.ErrNoRows):
		if s.noRow == nil {
			return nil, nil
		}
		return s.noRow(), nil
	}
	return nil, err
}

// read reads s's result from br.
func (s *stmt) read(br pgx.BatchResults) (opErr, sqlErr error) {
	if s.dest == nil {
		_, err := br.Exec()
		return s.result(err)
	}
	return s.result(br.QueryRow().Scan(s.dest...))
}

// write runs s, a write, through the group committer when there is one.
func (c *conn) write(ctx context.Context, s *stmt) error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	if len(c.committers) == 0 {
		return c.runOne(ctx, s)
	}
	// A write with no other in progress runs on the caller's goroutine: there is
	// nothing to group it with, and the hand-off to the committer would only add
	// latency. Writes that overlap one in progress queue up and are grouped.
	defer c.inflight.Add(-1)
	if c.inflight.Add(1) == 1 {
		start := time.Now()
		opErr, sqlErr := c.run(ctx, s)
		c.committed(1, start, sqlErr)
		if sqlErr != nil {
			return c.wrap(ctx, s.what, sqlErr)
		}
		return opErr
	}
	cm := c.committers[int(c.next.Add(1))%len(c.committers)]
	err := cm.Do(ctx, s)
	if errors.Is(err, groupcommit.ErrClosed) {
		return errClosed
	}
	return err
}

// committed tells env.OnCommit about one commit of calls writes.
func (c *conn) committed(calls int, start time.Time, err error) {
	if c.env.OnCommit != nil {
		c.env.OnCommit(driver.CommitInfo{Calls: calls, Duration: time.Since(start), Err: err})
	}
}

// run runs s alone, in its own implicit transaction, and returns its own outcome
// and the SQL or connection error, unwrapped.
func (c *conn) run(ctx context.Context, s *stmt) (opErr, sqlErr error) {
	var err error
	if s.dest == nil {
		_, err = c.pool.Exec(ctx, c.q(s.sql), s.args...)
	} else {
		err = c.pool.QueryRow(ctx, c.q(s.sql), s.args...).Scan(s.dest...)
	}
	return s.result(err)
}

// runOne runs s alone and returns the caller's error.
func (c *conn) runOne(ctx context.Context, s *stmt) error {
	opErr, sqlErr := c.run(ctx, s)
	if sqlErr != nil {
		return c.wrap(ctx, s.what, sqlErr)
	}
	return opErr
}

// commitGroup is the group committer's commit function: it sends every request of
// the group as one pipelined pgx.Batch, which PostgreSQL runs as one implicit
// transaction ending at the batch's single Sync, so the group costs one round trip
// and one WAL flush. Each statement's own failure is its row-less result and leaves
// the others alone (this is what a SAVEPOINT per operation would buy, without its
// two extra statements per operation). An SQL error, which PostgreSQL reports after
// rolling the whole group back, makes the group run again one statement at a time,
// so each caller gets its own outcome; a connection error fails the whole group,
// whose commit may or may not have happened. Each commit is reported to
// env.OnCommit.
func (c *conn) commitGroup(group []*groupcommit.Request[*stmt]) {
	live := make([]*groupcommit.Request[*stmt], 0, len(group))
	for _, r := range group {
		// Requests whose caller gave up before the group started are not
		// written (the committer's contract); the Store checked them on entry.
		if err := r.Ctx.Err(); err != nil {
			r.Err = err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	ctx, cancel := groupContext(live)
	defer cancel()
	if len(live) == 1 {
		opErr, sqlErr := c.run(ctx, live[0].Value)
		c.committed(1, start, sqlErr)
		live[0].Err = opErr
		if sqlErr != nil {
			live[0].Err = c.wrap(live[0].Ctx, live[0].Value.what, sqlErr)
		}
		return
	}
	// Concurrent callers' operations are unordered with respect to each other, so
	// the appends may go first, merged into one statement.
	var apps, others []*groupcommit.Request[*stmt]
	for _, r := range live {
		if r.Value.app != nil {
			apps = append(apps, r)
		} else {
			others = append(others, r)
		}
	}
	if len(apps) < 2 {
		others, apps = live, nil
	}
	var b pgx.Batch
	if apps != nil {
		b.Queue(c.q(mergedAppend), appendArrays(apps)...)
	}
	for _, r := range others {
		b.Queue(c.q(r.Value.sql), r.Value.args...)
	}
	results := make([]error, len(others))
	var appResults []error
	br := c.pool.SendBatch(ctx, &b)
	failed := func() error {
		if apps != nil {
			var err error
			if appResults, err = readAppends(br, apps); err != nil {
				return err
			}
		}
		for i, r := range others {
			opErr, sqlErr := r.Value.read(br)
			if sqlErr != nil {
				return sqlErr
			}
			results[i] = opErr
		}
		return nil
	}()
	if err := br.Close(); err != nil && failed == nil {
		failed = err
	}
	c.committed(len(live), start, failed)
	if failed == nil {
		for i, r := range others {
			r.Err = results[i]
		}
		for i, r := range apps {
			r.Err = appResults[i]
		}
		return
	}
	var pe *pgconn.PgError
	if errors.As(failed, &pe) {
		for _, r := range live {
			start := time.Now()
			opErr, sqlErr := c.run(r.Ctx, r.Value)
			c.committed(1, start, sqlErr)
			r.Err = opErr
			if sqlErr != nil {
				r.Err = c.wrap(r.Ctx, r.Value.what, sqlErr)
			}
		}
		return
	}
	for _, r := range live {
		r.Err = c.wrap(r.Ctx, r.Value.what, failed)
	}
}

// groupContext bounds a group's round trip by the latest deadline among its
// requests, and leaves it unbounded if one of them has none: the group is shared, so
// no single caller's cancellation may abort the others' writes.
func groupContext(group []*groupcommit.Request[*stmt]) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range group {
		d, ok := r.Ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// mergedAppend inserts one packet per element of the arrays, numbering them in
// array order, and returns the sequence number of each by its ordinality; a packet
// whose session does not exist returns no row.
const mergedAppend = `WITH t AS (
		SELECT t.o, s.h, t.c, t.b FROM unnest($1::bytea[], $2::smallint[], $3::bytea[]) WITH ORDINALITY AS t(h, c, b, o)
		JOIN mqtt_sessions s ON s.h = t.h ORDER BY t.o),
	v AS (SELECT o, h, c, b, nextval('mqtt_packet_seq') AS seq FROM t),
	i AS (INSERT INTO mqtt_packets (h, class, seq, blob) SELECT h, c, seq, b FROM v)
	SELECT o, seq FROM v`

// appendArrays returns mergedAppend's arguments for apps.
func appendArrays(apps []*groupcommit.Request[*stmt]) []any {
	hs := make([][]byte, len(apps))
	cs := make([]int16, len(apps))
	bs := make([][]byte, len(apps))
	for i, r := range apps {
		a := r.Value.app
		hs[i], cs[i], bs[i] = a.h, a.class, a.blob
	}
	return []any{hs, cs, bs}
}

// readAppends reads mergedAppend's rows: each request gets its sequence number, or
// its noRow error when its session was missing.
func readAppends(br pgx.BatchResults, apps []*groupcommit.Request[*stmt]) ([]error, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	found := make([]bool, len(apps))
	for rows.Next() {
		var o, seq int64
		if err := rows.Scan(&o, &seq); err != nil {
			rows.Close()
			return nil, err
		}
		if o < 1 || o > int64(len(apps)) {
			rows.Close()
			return nil, fmt.Errorf("merged append returned ordinality %d of %d", o, len(apps))
		}
		*apps[o-1].Value.app.seq = seq
		found[o-1] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	errs := make([]error, len(apps))
	for i, r := range apps {
		if !found[i] {
			errs[i] = r.Value.noRow()
		}
	}
	return errs, nil
}
