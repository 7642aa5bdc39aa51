package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// FenceInTx runs the driver's fence statement for o in tx, as a fenced Apply
// does, and returns its outcome (ErrFenced when o is not current); the row lock it
// takes is held until tx ends.
func FenceInTx(ctx context.Context, s *persistence.Store, tx pgx.Tx, o persistence.Ownership) error {
	c := s.Driver().(*conn)
	st := fenceStmt(o.ID, o.Epoch)
	opErr, sqlErr := st.result(tx.QueryRow(ctx, c.q(st.sql), st.args...).Scan(st.dest...))
	if sqlErr != nil {
		return sqlErr
	}
	return opErr
}

// FencedAppendInTx runs, in tx, the one statement a fenced Apply of packet writes
// becomes (packetWriteStmt): o's fence and an append of one packet to o's session.
// It returns its outcome (ErrFenced when o is not current, and then nothing is
// written); the row lock the fence takes is held until tx ends.
func FencedAppendInTx(ctx context.Context, s *persistence.Store, tx pgx.Tx, o persistence.Ownership) error {
	c := s.Driver().(*conn)
	ops := []driver.Op{
		{Kind: driver.OpFence, ID: o.ID, Epoch: o.Epoch},
		{Kind: driver.OpPacketAppend, ID: o.ID, Class: driver.ClassQoS12, Packet: &driver.PersistedPacket{QoS: 1, Data: []byte("x")}},
	}
	st := packetWriteStmt(ops, make([]int64, 1))
	opErr, sqlErr := st.result(tx.QueryRow(ctx, c.q(st.sql), st.args...).Scan(st.dest...))
	if sqlErr != nil {
		return sqlErr
	}
	return opErr
}

// Schema returns the store's schema.
func Schema(s *persistence.Store) string { return s.Driver().(*conn).schema }
