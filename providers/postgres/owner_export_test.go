package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence"
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

// Schema returns the store's schema.
func Schema(s *persistence.Store) string { return s.Driver().(*conn).schema }
