package mutation

// Bugs planted at the driver.Conn level: wrappers that change one method, or one
// path of one method, of a correct driver.

import (
	"context"
	"runtime"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// window widens the gap of a check-then-act bug, as a slow disk or network
// round trip between the read and the write would. It is the bug, not
// synchronisation of a test.
func window() {
	runtime.Gosched()
	time.Sleep(300 * time.Microsecond)
}

type qkey struct {
	id    string
	class driver.PacketClass
}

// ---- apply: a function in place of Apply ----

type applyConn struct {
	driver.Conn
	f func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error)
}

func (a *applyConn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	return a.f(a.Conn, ctx, ops)
}

func withApply(f func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error)) func(driver.Conn) driver.Conn {
	return func(c driver.Conn) driver.Conn { return &applyConn{Conn: c, f: f} }
}

func single(ops []driver.Op, kind driver.OpKind) bool { return len(ops) == 1 && ops[0].Kind == kind }

func exists(c driver.Conn, ctx context.Context, id string, class driver.PacketClass, seq uint64) bool {
	_, err := c.PacketGet(ctx, id, class, seq)
	return err == nil
}
