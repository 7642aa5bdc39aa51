package mem

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// The in-memory driver keeps values, not encoded bytes, and rebuilds nothing from
// disk: no record of it can be broken and its indexes are only ever changed with
// the values they index. Its repair operations (driver.RepairConn) are so trivial,
// and exist so that a tool runs the same way on every driver.

// BrokenForEach visits nothing: no record of an in-memory store can be broken.
func (s *conn) BrokenForEach(context.Context, func(*driver.BrokenRecord) error) error {
	return s.checkOpen()
}

// BrokenDelete returns ErrNotFound: there is no broken record to remove.
func (s *conn) BrokenDelete(_ context.Context, r *driver.BrokenRecord) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	return fmt.Errorf("mem: broken %s: %w (an in-memory store has no broken records)", r.Kind, driver.ErrNotFound)
}

// Rebuild corrects nothing: the in-memory indexes are never out of step.
func (s *conn) Rebuild(context.Context) ([]driver.Fix, error) { return nil, s.checkOpen() }

var _ driver.RepairConn = (*conn)(nil)

// checkOpen returns errClosed once the store is closed.
func (s *conn) checkOpen() error {
	if err := s.rlock(); err != nil {
		return err
	}
	s.mu.RUnlock()
	return nil
}
