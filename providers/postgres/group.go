package postgres

import (
	"context"
	"errors"
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
	// pw is set for packet writes (a PacketAppend, a PacketDelete, an Apply of
	// fenced packet writes): the group committer merges those of a group into one
	// statement (packetwrite.go).
	pw *packetWrite
	// multi, when set, makes this an Apply of several statements, to commit in
	// one transaction (and sql, args and dest are unused).
	multi []*stmt
}

// split sorts a group's requests: packet writes, kept apart for merging when
// there are at least two of them, and the others.
func split(live []*groupcommit.Request[*stmt]) (pws, others []*groupcommit.Request[*stmt]) {
	for _, r := range live {
		if r.Value.pw != nil {
			pws = append(pws, r)
		} else {
			others = append(others, r)
		}
	}
	if len(pws) < 2 {
		others, pws = append(others, pws...), nil
	}
	return pws, others
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
	// the packet writes may go first, merged into one statement.
	pws, others := split(live)
	var b pgx.Batch
	var ws packetWrites
	if pws != nil {
		ws = c.queuePacketWrites(&b, pws)
	}
	for _, r := range others {
		b.Queue(c.q(r.Value.sql), r.Value.args...)
	}
	results := make([]error, len(others))
	var pwResults []error
	br := c.pool.SendBatch(ctx, &b)
	failed := func() error {
		if pws != nil {
			var err error
			if pwResults, err = readPacketWrites(br, ws); err != nil {
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
		for i, r := range pws {
			r.Err = pwResults[i]
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
// its failure, as persistence/kv's group commit does. The packet writes of the
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
		pws, others := split(live)
		failedOp, results, pwResults, err := c.txRound(ctx, pws, others)
		c.committed(len(live), start, err)
		if err != nil {
			c.groupFailed(live, err)
			return
		}
		if failedOp == nil {
			for i, r := range others {
				r.Err = results[i]
			}
			for i, r := range pws {
				r.Err = pwResults[i]
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
func (c *conn) txRound(ctx context.Context, pws, others []*groupcommit.Request[*stmt]) (
	failedOp map[*groupcommit.Request[*stmt]]error, results, pwResults []error, err error) {
	pc, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	defer pc.Release()
	var b pgx.Batch
	b.Queue(`BEGIN`)
	var ws packetWrites
	if pws != nil {
		ws = c.queuePacketWrites(&b, pws)
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
		if pws != nil {
			var err error
			if pwResults, err = readPacketWrites(br, ws); err != nil {
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
		return nil, nil, nil, sqlErr
	}
	return failedOp, results, pwResults, nil
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
