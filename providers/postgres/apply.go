package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	stmts := make([]*stmt, 0, len(ops))
	nextSeq := 0
	for i := 0; i < len(ops); {
		op := &ops[i]
		// n is the length of the run of operations of op's kind on op's session.
		n := 1
		for i+n < len(ops) && ops[i+n].Kind == op.Kind && ops[i+n].ID == op.ID {
			n++
		}
		run := ops[i : i+n]
		switch op.Kind {
		case driver.OpCreate:
			n = 1
			stmts = append(stmts, createStmt(op.ID, op.Base))
		case driver.OpDelete:
			stmts = append(stmts, deleteStmt(op.ID))
		case driver.OpPacketAppend:
			if n == 1 {
				stmts = append(stmts, appendStmt(op.ID, op.Class, op.Packet, &seqs[nextSeq]))
			} else {
				stmts = append(stmts, appendsStmt(op.ID, run, seqs[nextSeq:nextSeq+n]))
			}
			nextSeq += n
		case driver.OpPacketUpdate:
			n = 1
			stmts = append(stmts, updateStmt(op.ID, op.Class, op.Packet))
		case driver.OpPacketDelete:
			n = 1
			stmts = append(stmts, packetDeleteStmt(op.ID, op.Class, op.Seq))
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
		default:
			return nil, fmt.Errorf("postgres: %w: unknown operation %d", driver.ErrInvalidArgument, op.Kind)
		}
		i += n
	}
	var err error
	if len(stmts) == 1 {
		err = c.write(ctx, stmts[0])
	} else {
		err = c.applyStmts(ctx, stmts)
	}
	if err != nil {
		return nil, err
	}
	if appends == 0 {
		return nil, nil
	}
	out := make([]uint64, appends)
	for i, s := range seqs {
		out[i] = uint64(s)
	}
	return out, nil
}

// applyStmts runs stmts in one transaction: all commit, or none when one of them
// reports a failure or errors.
func (c *conn) applyStmts(ctx context.Context, stmts []*stmt) error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	pc, err := c.pool.Acquire(ctx)
	if err != nil {
		return c.wrap(ctx, "apply", err)
	}
	defer pc.Release()
	var b pgx.Batch
	b.Queue(`BEGIN`)
	for _, s := range stmts {
		b.Queue(c.q(s.sql), s.args...)
	}
	var opErr, sqlErr error
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
	end := `COMMIT`
	if opErr != nil || sqlErr != nil {
		end = `ROLLBACK`
	}
	// The transaction must end even when ctx has, or the connection goes back to
	// the pool inside it (pgxpool then discards it, but only after a failed reuse).
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := pc.Exec(endCtx, end); err != nil && sqlErr == nil && opErr == nil {
		sqlErr = err
	}
	switch {
	case sqlErr != nil:
		if !pc.Conn().IsClosed() && pc.Conn().PgConn().TxStatus() != 'I' {
			_ = pc.Conn().Close(endCtx)
		}
		return c.wrap(ctx, "apply", sqlErr)
	case opErr != nil:
		return opErr
	}
	return nil
}
