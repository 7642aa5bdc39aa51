package mutation

import (
	"context"
	"strings"
	"sync"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- retained ----

type retainedDeleteNoop struct{ driver.Conn }

func (retainedDeleteNoop) RetainedDelete(context.Context, string) error { return nil }

// retainedCountDrift reports RetainedCount off by a drift: replace counts a put
// over an existing topic as a new message; del forgets to decrement on delete.
type retainedCountDrift struct {
	driver.Conn
	replace, del bool
	mu           sync.Mutex
	drift        int64
}

func (c *retainedCountDrift) bump() {
	c.mu.Lock()
	c.drift++
	c.mu.Unlock()
}

func (c *retainedCountDrift) RetainedPut(ctx context.Context, topic string, p *driver.PersistedPacket) error {
	_, getErr := c.Conn.RetainedGet(ctx, topic)
	err := c.Conn.RetainedPut(ctx, topic, p)
	if err == nil && getErr == nil && c.replace {
		c.bump()
	}
	return err
}

func (c *retainedCountDrift) RetainedDelete(ctx context.Context, topic string) error {
	_, getErr := c.Conn.RetainedGet(ctx, topic)
	err := c.Conn.RetainedDelete(ctx, topic)
	if err == nil && getErr == nil && c.del {
		c.bump()
	}
	return err
}

func (c *retainedCountDrift) RetainedReplace(ctx context.Context, msgs []*driver.RetainedMessage) error {
	err := c.Conn.RetainedReplace(ctx, msgs)
	if err == nil {
		c.mu.Lock()
		c.drift = 0
		c.mu.Unlock()
	}
	return err
}

func (c *retainedCountDrift) RetainedCount(ctx context.Context) (uint64, error) {
	n, err := c.Conn.RetainedCount(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	return uint64(int64(n) + c.drift), err
}

// retainedFirstWins keeps the first message of a topic in Store, not the last.
type retainedFirstWins struct{ driver.Conn }

func (c retainedFirstWins) RetainedReplace(ctx context.Context, msgs []*driver.RetainedMessage) error {
	seen := map[string]bool{}
	var out []*driver.RetainedMessage
	for _, m := range msgs {
		if !seen[m.Topic] {
			seen[m.Topic] = true
			out = append(out, m)
		}
	}
	return c.Conn.RetainedReplace(ctx, out)
}

// retainedGetMatches treats a topic with wildcards given to Get as a filter.
type retainedGetMatches struct{ driver.Conn }

func (c retainedGetMatches) RetainedGet(ctx context.Context, topic string) (*driver.PersistedPacket, error) {
	if strings.ContainsAny(topic, "+#") {
		var got *driver.PersistedPacket
		_ = c.Conn.RetainedLoad(ctx, []string{topic}, func(m *driver.RetainedMessage) error {
			got = m.Packet
			return driver.ErrStopIteration
		})
		if got != nil {
			return got, nil
		}
	}
	return c.Conn.RetainedGet(ctx, topic)
}

// matchConn matches retained messages with its own (broken) matcher.
type matchConn struct {
	driver.Conn
	match func(filter, topic string) bool
	// perFilter loads each filter separately: a message matching two filters is
	// delivered twice.
	perFilter bool
}

func (c matchConn) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	if filters == nil {
		return c.Conn.RetainedLoad(ctx, nil, fn)
	}
	if c.perFilter {
		for _, f := range filters {
			if err := c.Conn.RetainedLoad(ctx, []string{f}, fn); err != nil {
				return err
			}
		}
		return nil
	}
	return c.Conn.RetainedLoad(ctx, nil, func(m *driver.RetainedMessage) error {
		for _, f := range filters {
			if driver.ValidFilter(f) == nil && c.match(f, m.Topic) {
				return fn(m)
			}
		}
		return nil
	})
}

func withMatcher(match func(filter, topic string) bool) func(driver.Conn) driver.Conn {
	return func(c driver.Conn) driver.Conn { return matchConn{Conn: c, match: match} }
}

// levels splits a topic or filter into levels.
func levels(s string) []string { return strings.Split(s, "/") }

// matchDollarAnyLevel refuses a wildcard on a '$' level at any depth.
func matchDollarAnyLevel(filter, topic string) bool {
	if !driver.MatchTopic(filter, topic) {
		return false
	}
	f, t := levels(filter), levels(topic)
	for i, fl := range f {
		if fl == "#" {
			for _, tl := range t[i:] {
				if strings.HasPrefix(tl, "$") {
					return false
				}
			}
			return true
		}
		if fl == "+" && strings.HasPrefix(t[i], "$") {
			return false
		}
	}
	return true
}

func matchTrimsTrailingSlash(filter, topic string) bool {
	return driver.MatchTopic(filter, strings.TrimSuffix(topic, "/"))
}

// matchPlusPastEnd lets a trailing '+' match a missing last level.
func matchPlusPastEnd(filter, topic string) bool {
	if driver.MatchTopic(filter, topic) {
		return true
	}
	if f, ok := strings.CutSuffix(filter, "/+"); ok {
		return driver.MatchTopic(f, topic)
	}
	return false
}

// matchPrefix lets a filter without wildcards match the topics below it.
func matchPrefix(filter, topic string) bool {
	return driver.MatchTopic(filter, topic) || (!strings.ContainsAny(filter, "+#") && strings.HasPrefix(topic, filter+"/"))
}

// matchPlusNotEmpty makes '+' refuse an empty level.
func matchPlusNotEmpty(filter, topic string) bool {
	if !driver.MatchTopic(filter, topic) {
		return false
	}
	f, t := levels(filter), levels(topic)
	for i, fl := range f {
		if fl == "#" {
			break
		}
		if fl == "+" && t[i] == "" {
			return false
		}
	}
	return true
}

// matchShallowPlus supports '+' only in the first four levels (a fixed-size
// array of wildcard positions); deeper it is compared literally.
func matchShallowPlus(filter, topic string) bool {
	if !driver.MatchTopic(filter, topic) {
		return false
	}
	f, t := levels(filter), levels(topic)
	for i := 4; i < len(f) && i < len(t); i++ {
		if f[i] == "+" && t[i] != "+" {
			return false
		}
	}
	return true
}

// matchHashNotParent: "a/#" does not match "a".
func matchHashNotParent(filter, topic string) bool {
	if p, ok := strings.CutSuffix(filter, "/#"); ok && topic == p {
		return false
	}
	return driver.MatchTopic(filter, topic)
}
