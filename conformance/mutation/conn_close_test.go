package mutation

import (
	"context"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- locks, hangs and Close ----

// lockedExpiry holds one mutex through ExpiredForEach, callbacks included, and
// through every write and Close: a callback that deletes its session deadlocks.
type lockedExpiry struct {
	driver.Conn
	mu sync.Mutex
}

func (c *lockedExpiry) ExpiredForEach(ctx context.Context, now time.Time, fn driver.ExpiredLoader) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.ExpiredForEach(ctx, now, fn)
}

func (c *lockedExpiry) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Apply(ctx, ops)
}

func (c *lockedExpiry) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Close()
}

// closeWaits holds a read lock for the whole of every retained load, callbacks
// included, and Close takes it exclusively: Close waits for the iteration.
type closeWaits struct {
	driver.Conn
	mu sync.RWMutex
}

func (c *closeWaits) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.Conn.RetainedLoad(ctx, filters, fn)
}

func (c *closeWaits) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Close()
}

// stuckPage blocks forever, ignoring the context, when a packet iteration reaches
// its second page, and Close waits for iterations.
type stuckPage struct {
	driver.Conn
	mu    sync.RWMutex
	never chan struct{}
}

func (c *stuckPage) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	return c.Conn.PacketsForEach(ctx, id, class, func(p *driver.PersistedPacket) (bool, error) {
		if n++; n == 257 {
			<-c.never
		}
		return fn(p)
	})
}

func (c *stuckPage) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Close()
}
