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
	// del is set for a PacketDelete: the group committer merges the deletes of a
	// group (acknowledgements of many sessions) into one statement.
	del *deleteOp
	// multi, when set, makes this an Apply of several statements, to commit in
	// one transaction (and sql, args and dest are unused).
	multi []*stmt
}

// deleteOp is a PacketDelete's values, for merging.
type deleteOp struct {
	h     []byte
	class int16
	seq   int64
}

// mergedDelete deletes one packet per element of the arrays and returns the
// hashes of the sessions that do not exist (their callers' ErrNotFound).
const mergedDelete = `WITH t AS (SELECT * FROM unnest($1::bytea[], $2::smallint[], $3::bigint[]) AS t(h, c, s)),
	d AS (DELETE FROM mqtt_packets p USING t WHERE p.h = t.h AND p.class = t.c AND p.seq = t.s)
	SELECT (SELECT array_agg(DISTINCT t.h) FROM t WHERE NOT EXISTS (SELECT 1 FROM mqtt_sessions s WHERE s.h = t.h))`

// deleteArrays returns mergedDelete's arguments for dels.
func deleteArrays(dels []*groupcommit.Request[*stmt]) []any {
	hs := make([][]byte, len(dels))
	cs := make([]int16, len(dels))
	ss := make([]int64, len(dels))
	for i, r := range dels {
		d := r.Value.del
		hs[i], cs[i], ss[i] = d.h, d.class, d.seq
	}
	return []any{hs, cs, ss}
}

// readDeletes reads mergedDelete's row: a request whose session is missing gets
// its noRow error.
func readDeletes(br pgx.BatchResults, dels []*groupcommit.Request[*stmt]) ([]error, error) {
	var missing [][]byte
	if err := br.QueryRow().Scan(&missing); err != nil {
		return nil, err
	}
	errs := make([]error, len(dels))
	for _, m := range missing {
		for i, r := range dels {
			if string(r.Value.del.h) == string(m) {
				errs[i] = r.Value.noRow()
			}
		}
	}
	return errs, nil
}

// split sorts a group's requests: single appends and single packet deletes, each
// kept apart for merging when there are at least two of them, and the others.
func split(live []*groupcommit.Request[*stmt]) (apps, dels, others []*groupcommit.Request[*stmt]) {
	for _, r := range live {
		switch {
		case r.Value.app != nil:
			apps = append(apps, r)
		case r.Value.del != nil:
			dels = append(dels, r)
		default:
			others = append(others, r)
		}
	}
	if len(apps) < 2 {
		others, apps = append(others, apps...), nil
	}
	if len(dels) < 2 {
		others, dels = append(others, dels...), nil
	}
	return apps, dels, others
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
	if s.multi != nil {
		return c.runTx(ctx, s.multi)
	}
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
	for _, r := range live {
		if r.Value.multi != nil {
			c.commitTxGroup(ctx, live, start)
			return
		}
	}
	// Concurrent callers' operations are unordered with respect to each other, so
	// the deletes and the appends may go first, merged into one statement each.
	apps, dels, others := split(live)
	var b pgx.Batch
	if dels != nil {
		b.Queue(c.q(mergedDelete), deleteArrays(dels)...)
	}
	if apps != nil {
		b.Queue(c.q(mergedAppend), appendArrays(apps)...)
	}
	for _, r := range others {
		b.Queue(c.q(r.Value.sql), r.Value.args...)
	}
	results := make([]error, len(others))
	var appResults, delResults []error
	br := c.pool.SendBatch(ctx, &b)
	failed := func() error {
		if dels != nil {
			var err error
			if delResults, err = readDeletes(br, dels); err != nil {
				return err
			}
		}
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
		for i, r := range dels {
			r.Err = delResults[i]
		}
		return
	}
	c.groupFailed(live, failed)
}

// groupFailed gives each request of a group that failed with err its outcome: an
// SQL error, which PostgreSQL reports after rolling the whole group back, makes
// the group run again one request at a time, so each caller gets its own outcome;
// a connection error fails the whole group, whose commit may or may not have
// happened.
func (c *conn) groupFailed(live []*groupcommit.Request[*stmt], err error) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
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
		r.Err = c.wrap(r.Ctx, r.Value.what, err)
	}
}

// commitTxGroup commits a group that holds at least one Apply of several
// statements: every request's statements, in one explicit transaction pipelined
// after BEGIN (one round trip), then COMMIT (a second, and the group's only WAL
// flush). A single statement's own failure writes nothing and leaves the others
// alone; a multi-statement Apply whose statement fails must write nothing either,
// so the transaction is rolled back and run again without that Apply, which gets
// its failure, as persistence/kv's group commit does. The single appends of the
// group are merged into one statement, as in commitGroup.
func (c *conn) commitTxGroup(ctx context.Context, live []*groupcommit.Request[*stmt], start time.Time) {
	for len(live) > 0 {
		if len(live) == 1 {
			r := live[0]
			opErr, sqlErr := c.run(ctx, r.Value)
			c.committed(1, start, sqlErr)
			r.Err = opErr
			if sqlErr != nil {
				r.Err = c.wrap(r.Ctx, r.Value.what, sqlErr)
			}
			return
		}
		apps, dels, others := split(live)
		failedOp, results, appResults, delResults, err := c.txRound(ctx, apps, dels, others)
		c.committed(len(live), start, err)
		if err != nil {
			c.groupFailed(live, err)
			return
		}
		if failedOp == nil {
			for i, r := range others {
				r.Err = results[i]
			}
			for i, r := range apps {
				r.Err = appResults[i]
			}
			for i, r := range dels {
				r.Err = delResults[i]
			}
			return
		}
		// Rolled back: the Applies that failed get their failure, the rest run again.
		rest := live[:0:0]
		for _, r := range live {
			if e, ok := failedOp[r]; ok {
				r.Err = e
			} else {
				rest = append(rest, r)
			}
		}
		live = rest
		start = time.Now()
	}
}

// txRound runs one attempt of commitTxGroup. It returns the multi-statement
// requests that failed (the transaction was then rolled back), or each request's
// outcome (committed), or an SQL or connection error (rolled back, or unknown).
func (c *conn) txRound(ctx context.Context, apps, dels, others []*groupcommit.Request[*stmt]) (
	failedOp map[*groupcommit.Request[*stmt]]error, results, appResults, delResults []error, err error) {
	pc, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer pc.Release()
	var b pgx.Batch
	b.Queue(`BEGIN`)
	if dels != nil {
		b.Queue(c.q(mergedDelete), deleteArrays(dels)...)
	}
	if apps != nil {
		b.Queue(c.q(mergedAppend), appendArrays(apps)...)
	}
	for _, r := range others {
		if r.Value.multi == nil {
			b.Queue(c.q(r.Value.sql), r.Value.args...)
			continue
		}
		for _, s := range r.Value.multi {
			b.Queue(c.q(s.sql), s.args...)
		}
	}
	results = make([]error, len(others))
	br := pc.SendBatch(ctx, &b)
	sqlErr := func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if dels != nil {
			var err error
			if delResults, err = readDeletes(br, dels); err != nil {
				return err
			}
		}
		if apps != nil {
			var err error
			if appResults, err = readAppends(br, apps); err != nil {
				return err
			}
		}
		for i, r := range others {
			if r.Value.multi == nil {
				opErr, sqlErr := r.Value.read(br)
				if sqlErr != nil {
					return sqlErr
				}
				results[i] = opErr
				continue
			}
			for _, s := range r.Value.multi {
				opErr, sqlErr := s.read(br)
				if sqlErr != nil {
					return sqlErr
				}
				if opErr != nil && results[i] == nil {
					results[i] = opErr
					if failedOp == nil {
						failedOp = map[*groupcommit.Request[*stmt]]error{}
					}
					failedOp[r] = opErr
				}
			}
		}
		return nil
	}()
	if err := br.Close(); err != nil && sqlErr == nil {
		sqlErr = err
	}
	sqlErr = c.endTx(ctx, pc, failedOp != nil || sqlErr != nil, sqlErr)
	if sqlErr != nil {
		return nil, nil, nil, nil, sqlErr
	}
	return failedOp, results, appResults, delResults, nil
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
