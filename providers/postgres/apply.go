package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Apply turns ops into statements, merging runs of operations of one kind on one
// session into one statement (the appends of PacketsStore, the subscriptions of
// SubscriptionsStore, the classes of PacketsDelete, …). One statement is atomic by
// itself and goes through [conn.write], so that concurrent single writes (above all
// PacketAppend) are merged by the group committer; several run in one explicit
// transaction sent as one pipelined pgx.Batch.
func (c *conn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	appends := 0
	for i := range ops {
		if ops[i].Kind == driver.OpPacketAppend {
			appends++
		}
	}
	seqs := make([]int64, appends)
	if packetWriteRuns(ops) {
		if err := c.write(ctx, packetWriteStmt(ops, seqs)); err != nil {
			return nil, err
		}
		return seqsOut(seqs), nil
	}
	stmts := make([]*stmt, 0, len(ops))
	nextSeq := 0
	for i := 0; i < len(ops); {
		op := &ops[i]
		// n is the length of the run of operations of op's kind on op's session.
		n := 1
		for i+n < len(ops) && ops[i+n].Kind == op.Kind && ops[i+n].ID == op.ID {
			n++
		}
		// Appends and packet deletes merge across sessions too: a broker's
		// fan-out appends to every matching session, and its moves to in-flight
		// and acknowledgements delete by the page.
		if op.Kind == driver.OpPacketAppend || op.Kind == driver.OpPacketDelete {
			for i+n < len(ops) && ops[i+n].Kind == op.Kind {
				n++
			}
		}
		run := ops[i : i+n]
		switch op.Kind {
		case driver.OpCreate:
			n = 1
			stmts = append(stmts, createStmt(op.ID, op.Base))
		case driver.OpDelete:
			stmts = append(stmts, deleteStmt(op.ID))
		case driver.OpPacketAppend:
			switch {
			case n == 1:
				stmts = append(stmts, appendStmt(op.ID, op.Class, op.Packet, seqs[nextSeq:nextSeq+1]))
			case oneSession(run):
				stmts = append(stmts, appendsStmt(op.ID, run, seqs[nextSeq:nextSeq+n]))
			default:
				stmts = append(stmts, multiAppendStmt(run, seqs[nextSeq:nextSeq+n]))
			}
			nextSeq += n
		case driver.OpPacketUpdate:
			n = 1
			stmts = append(stmts, updateStmt(op.ID, op.Class, op.Packet))
		case driver.OpPacketDelete:
			if n == 1 {
				stmts = append(stmts, packetDeleteStmt(op.ID, op.Class, op.Seq))
			} else {
				stmts = append(stmts, multiDeleteStmt(run))
			}
		case driver.OpPacketsDelete:
			classes := make([]int16, n)
			for j := range run {
				classes[j] = int16(run[j].Class)
			}
			stmts = append(stmts, packetsDeleteStmt(op.ID, classes))
		case driver.OpSubscriptionStore:
			subs := make([]driver.Subscription, n)
			for j := range run {
				subs[j] = run[j].Subscription
			}
			stmts = append(stmts, subscriptionsStoreStmt(op.ID, subs))
		case driver.OpSubscriptionDelete:
			filters := make([]string, n)
			for j := range run {
				filters[j] = run[j].Filter
			}
			stmts = append(stmts, subscriptionsDeleteStmt(op.ID, filters))
		case driver.OpSubscriptionsDeleteAll:
			stmts = append(stmts, subscriptionsDeleteAllStmt(op.ID))
		case driver.OpStateStore:
			n = 1
			stmts = append(stmts, stateStoreStmt(op.ID, op.State))
		case driver.OpStateDelete:
			stmts = append(stmts, stateDeleteStmt(op.ID))
		case driver.OpExpiryStore:
			n = 1
			stmts = append(stmts, expiryStoreStmt(op.ID, op.Expiry))
		case driver.OpExpiryDelete:
			stmts = append(stmts, expiryDeleteStmt(op.ID))
		case driver.OpFence: // shared stores: see owner.go
			n = 1
			stmts = append(stmts, fenceStmt(op.ID, op.Epoch))
		case driver.OpNotify: // notify.go
			n = 1
			stmts = append(stmts, c.notifyStmt(op.Channel, op.Payload))
		default:
			return nil, fmt.Errorf("postgres: %w: unknown operation %d", driver.ErrInvalidArgument, op.Kind)
		}
		i += n
	}
	var err error
	if len(stmts) == 1 {
		err = c.write(ctx, stmts[0])
	} else {
		err = c.write(ctx, &stmt{what: "apply", multi: stmts})
	}
	if err != nil {
		return nil, err
	}
	return seqsOut(seqs), nil
}

// seqsOut returns Apply's sequence numbers: nil when there were no appends.
func seqsOut(seqs []int64) []uint64 {
	if len(seqs) == 0 {
		return nil
	}
	out := make([]uint64, len(seqs))
	for i, s := range seqs {
		out[i] = uint64(s)
	}
	return out
}

// runTx runs stmts in one transaction: all commit, or none when one of them
// reports a failure or errors. It returns the first statement's own failure and
// the SQL or connection error, unwrapped. It costs two round trips: the statements
// pipelined after BEGIN, then COMMIT or ROLLBACK once their results are known.
func (c *conn) runTx(ctx context.Context, stmts []*stmt) (opErr, sqlErr error) {
	pc, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer pc.Release()
	var b pgx.Batch
	b.Queue(`BEGIN`)
	for _, s := range stmts {
		b.Queue(c.q(s.sql), s.args...)
	}
	br := pc.SendBatch(ctx, &b)
	if _, err := br.Exec(); err != nil {
		sqlErr = err
	}
	for i, s := range stmts {
		if sqlErr != nil {
			break
		}
		oe, se := s.read(br)
		if se != nil {
			sqlErr = fmt.Errorf("batch statement %d (%s): %w", i, s.what, se)
		} else if oe != nil && opErr == nil {
			opErr = oe
		}
	}
	if err := br.Close(); err != nil && sqlErr == nil {
		sqlErr = err
	}
	return opErr, c.endTx(ctx, pc, opErr != nil || sqlErr != nil, sqlErr)
}

// endTx ends the transaction open on pc: ROLLBACK when rollback is set, else
// COMMIT. It returns sqlErr, or the error of ending it. The transaction must end
// even when ctx has, or the connection goes back to the pool inside it (pgxpool
// then discards it, but only after a failed reuse); a connection left in a
// transaction is closed.
func (c *conn) endTx(ctx context.Context, pc *pgxpool.Conn, rollback bool, sqlErr error) error {
	end := `COMMIT`
	if rollback {
		end = `ROLLBACK`
	}
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := pc.Exec(endCtx, end); err != nil && sqlErr == nil {
		sqlErr = err
	}
	if sqlErr != nil && !pc.Conn().IsClosed() && pc.Conn().PgConn().TxStatus() != 'I' {
		_ = pc.Conn().Close(endCtx)
	}
	return sqlErr
}

// oneSession reports whether every op of run is on the session of the first.
func oneSession(run []driver.Op) bool {
	for i := range run {
		if run[i].ID != run[0].ID {
			return false
		}
	}
	return true
}

// multiAppendStmt appends the packets of run, to several sessions, in one
// statement that writes nothing unless every session exists, numbering them in
// order, and stores their sequence numbers in seqs.
func multiAppendStmt(run []driver.Op, seqs []int64) *stmt {
	hs := make([][]byte, len(run))
	cs := make([]int16, len(run))
	bs := make([][]byte, len(run))
	for i := range run {
		hs[i], cs[i], bs[i] = hashOf(run[i].ID), int16(run[i].Class), driver.EncodePacket(nil, run[i].Packet)
	}
	var found, got []int64
	s := &stmt{
		what: "append packets",
		sql:  multiAppend,
		args: []any{hs, cs, bs, len(run)},
		dest: []any{&found, &got},
	}
	s.post = func() error {
		if len(got) == len(seqs) {
			copy(seqs, got)
			return nil
		}
		if len(found) == len(seqs) || len(got) != 0 {
			return fmt.Errorf("postgres: append packets: %d sequence numbers for %d packets", len(got), len(seqs))
		}
		// The first packet whose session is missing names it.
		seen := make(map[int64]bool, len(found))
		for _, o := range found {
			seen[o] = true
		}
		for i := range run {
			if !seen[int64(i+1)] {
				return notFoundSession(run[i].ID)
			}
		}
		return notFoundSession(run[0].ID)
	}
	return s
}

// multiAppend inserts one packet per element of the arrays, numbering them in
// array order, only when all their sessions exist ($4 of them); it returns the
// ordinalities of the packets whose session exists and the sequence numbers
// assigned, in order.
const multiAppend = `WITH t AS (
		SELECT t.o, t.h, t.c, t.b FROM unnest($1::bytea[], $2::smallint[], $3::bytea[]) WITH ORDINALITY AS t(h, c, b, o)
		WHERE EXISTS (SELECT 1 FROM mqtt_sessions s WHERE s.h = t.h) ORDER BY t.o),
	v AS (SELECT o, h, c, b, nextval('mqtt_packet_seq') AS seq FROM t WHERE (SELECT count(*) FROM t) = $4),
	i AS (INSERT INTO mqtt_packets (h, class, seq, blob) SELECT h, c, seq, b FROM v)
	SELECT (SELECT array_agg(o ORDER BY o) FROM t), (SELECT array_agg(seq ORDER BY o) FROM v)`

// multiDeleteStmt deletes the packets of run, of one or several sessions, in one
// statement that deletes nothing when one of the sessions is missing.
func multiDeleteStmt(run []driver.Op) *stmt {
	hs := make([][]byte, len(run))
	cs := make([]int16, len(run))
	ss := make([]int64, len(run))
	for i := range run {
		hs[i], cs[i], ss[i] = hashOf(run[i].ID), int16(run[i].Class), seqArg(run[i].Seq)
	}
	var missing [][]byte
	s := &stmt{
		what: "delete packets",
		sql:  multiDelete,
		args: []any{hs, cs, ss},
		dest: []any{&missing},
	}
	s.post = func() error {
		if len(missing) == 0 {
			return nil
		}
		for i := range run {
			if string(hs[i]) == string(missing[0]) {
				return notFoundSession(run[i].ID)
			}
		}
		return notFoundSession(run[0].ID)
	}
	return s
}

// multiDelete deletes the packets (h, class, seq) of the arrays, unless a session
// is missing; it returns the hashes of the missing sessions.
const multiDelete = `WITH t AS (SELECT * FROM unnest($1::bytea[], $2::smallint[], $3::bigint[]) AS t(h, c, s)),
	m AS (SELECT DISTINCT t.h FROM t WHERE NOT EXISTS (SELECT 1 FROM mqtt_sessions s WHERE s.h = t.h)),
	d AS (DELETE FROM mqtt_packets p USING t WHERE p.h = t.h AND p.class = t.c AND p.seq = t.s
		AND NOT EXISTS (SELECT 1 FROM m))
	SELECT (SELECT array_agg(h) FROM m)`
