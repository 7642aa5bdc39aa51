package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Notifications are PostgreSQL's NOTIFY and LISTEN. An OpNotify becomes
// `SELECT pg_notify(channel, payload)` among the Apply's statements, so the server
// sends it when, and only if, that transaction commits. A listener holds one
// connection of its own, taken out of the pool, for as long as it listens.

var _ driver.Notifier = (*conn)(nil)

// listeners lets Close end every Listen in progress.
type listeners struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

func (l *listeners) context() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
	return l.ctx
}

func (l *listeners) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
	}
}

// channelName is the server's channel for channel in this store: one per schema,
// so that clusters on different schemas of one database do not hear each other.
func (c *conn) channelName(channel string) string {
	h := sha256.Sum256([]byte(c.schema))
	return "mqttstore_" + channel + "_" + hex.EncodeToString(h[:6])
}

// notifyStmt sends payload on channel when its transaction commits.
func (c *conn) notifyStmt(channel, payload string) *stmt {
	return &stmt{what: "notify", sql: `SELECT pg_notify($1, $2)`, args: []any{c.channelName(channel), payload}}
}

// Listen implements driver.Notifier on a connection of its own.
func (c *conn) Listen(ctx context.Context, channel string, ready func(), fn func(string)) error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	stop := c.listen.context()
	c.endWrite()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	pc, err := c.pool.Acquire(ctx)
	if err != nil {
		return c.listenErr(ctx, err)
	}
	lc := pc.Hijack() // ours alone: LISTEN state must not go back to the pool
	defer lc.Close(context.Background())
	if _, err := lc.Exec(ctx, "LISTEN "+pgx.Identifier{c.channelName(channel)}.Sanitize()); err != nil {
		return c.listenErr(ctx, err)
	}
	ready()
	for {
		n, err := lc.WaitForNotification(ctx)
		if err != nil {
			return c.listenErr(ctx, err)
		}
		fn(n.Payload)
	}
}

func (c *conn) listenErr(ctx context.Context, err error) error {
	if c.closing.Load() {
		return errClosed
	}
	return c.wrap(ctx, "listen", err)
}
