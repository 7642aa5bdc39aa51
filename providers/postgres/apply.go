package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence"
)

// Apply runs the batch's statements, in order, in one explicit transaction sent as
// one pipelined pgx.Batch (BEGIN and every statement in one round trip), then
// commits or, if any operation failed, rolls back. The statements are those of the
// single calls, so each operation keeps its semantics and its error.
func (ss *sessions) Apply(ctx context.Context, b *persistence.Batch) ([]uint64, error) {
	p := ss.p()
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("postgres: %w: nil batch", persistence.ErrInvalidArgument)
	}
	ops := b.Ops()
	if len(ops) == 0 {
		return nil, nil
	}
	stmts := make([]*stmt, len(ops))
	seqs := make([]int64, b.Appends())
	nextSeq := 0
	for i := range ops {
		op := &ops[i]
		if err := op.Validate(); err != nil {
			return nil, fmt.Errorf("postgres: batch operation %d: %w", i, err)
		}
		switch op.Kind {
		case persistence.OpCreate:
			stmts[i] = createStmt(op.ID, op.Base)
		case persistence.OpDelete:
			stmts[i] = deleteStmt(op.ID)
		case persistence.OpPacketAppend:
			stmts[i] = appendStmt(op.ID, op.Class, op.Packet, &seqs[nextSeq])
			nextSeq++
		case persistence.OpPacketUpdate:
			stmts[i] = updateStmt(op.ID, op.Class, op.Packet)
		case persistence.OpPacketDelete:
			stmts[i] = packetDeleteStmt(op.ID, op.Class, op.Seq)
		case persistence.OpPacketsDelete:
			stmts[i] = packetsDeleteStmt(op.ID, []int16{int16(op.Class)})
		case persistence.OpSubscriptionStore:
			stmts[i] = subscriptionsStoreStmt(op.ID, []persistence.Subscription{op.Subscription})
		case persistence.OpSubscriptionDelete:
			stmts[i] = subscriptionsDeleteStmt(op.ID, []string{op.Filter})
		case persistence.OpSubscriptionsDeleteAll:
			stmts[i] = subscriptionsDeleteAllStmt(op.ID)
		case persistence.OpStateStore:
			stmts[i] = stateStoreStmt(op.ID, op.State)
		case persistence.OpStateDelete:
			stmts[i] = stateDeleteStmt(op.ID)
		case persistence.OpExpiryStore:
			stmts[i] = expiryStoreStmt(op.ID, op.Expiry)
		case persistence.OpExpiryDelete:
			stmts[i] = expiryDeleteStmt(op.ID)
		}
	}
	if err := p.applyStmts(ctx, stmts); err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	out := make([]uint64, len(seqs))
	for i, s := range seqs {
		out[i] = uint64(s)
	}
	return out, nil
}

// applyStmts runs stmts in one transaction: all commit, or none when one of them
// reports a failure or errors.
func (p *provider) applyStmts(ctx context.Context, stmts []*stmt) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return p.wrap(ctx, "apply", err)
	}
	defer conn.Release()
	var b pgx.Batch
	b.Queue(`BEGIN`)
	for _, s := range stmts {
		s.queue(&b)
	}
	var opErr, sqlErr error
	br := conn.SendBatch(ctx, &b)
	if _, err := br.Exec(); err != nil {
		sqlErr = err
	}
	for i, s := range stmts {
		if sqlErr != nil {
			break
		}
		oe, se := s.read(br)
		if se != nil {
			sqlErr = fmt.Errorf("batch operation %d: %w", i, se)
		} else if oe != nil && opErr == nil {
			opErr = fmt.Errorf("postgres: batch operation %d: %w", i, oe)
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
	if _, err := conn.Exec(endCtx, end); err != nil && sqlErr == nil && opErr == nil {
		sqlErr = err
	}
	switch {
	case sqlErr != nil:
		if !conn.Conn().IsClosed() && conn.Conn().PgConn().TxStatus() != 'I' {
			_ = conn.Conn().Close(endCtx)
		}
		return p.wrap(ctx, "apply", sqlErr)
	case opErr != nil:
		return opErr
	}
	return nil
}
