package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// RetainedPut upserts the topic's row.
func (c *conn) RetainedPut(ctx context.Context, topic string, pk *driver.PersistedPacket) error {
	return c.write(ctx, &stmt{
		what: "put retained",
		sql: `INSERT INTO mqtt_retained (th, topic, blob) VALUES ($1, $2, $3)
			ON CONFLICT (th) DO UPDATE SET topic = EXCLUDED.topic, blob = EXCLUDED.blob`,
		args: []any{hashOf(topic), []byte(topic), driver.EncodePacket(nil, pk)},
	})
}

// RetainedGet reads the topic's row.
func (c *conn) RetainedGet(ctx context.Context, topic string) (*driver.PersistedPacket, error) {
	var blob []byte
	err := c.pool.QueryRow(ctx, c.q(`SELECT blob FROM mqtt_retained WHERE th = $1`), hashOf(topic)).Scan(&blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: retained message on %s: %w", show(topic), driver.ErrNotFound)
	}
	if err != nil {
		return nil, c.wrap(ctx, "get retained", err)
	}
	pk, err := driver.DecodePacket(blob)
	if err != nil {
		return nil, fmt.Errorf("postgres: retained message on %s: %w", show(topic), err)
	}
	return pk, nil
}

// RetainedDelete deletes the topic's row.
func (c *conn) RetainedDelete(ctx context.Context, topic string) error {
	return c.write(ctx, &stmt{
		what: "delete retained",
		sql:  `DELETE FROM mqtt_retained WHERE th = $1`,
		args: []any{hashOf(topic)},
	})
}

// prefixLen is how many leading bytes of a topic the prefix index holds.
const prefixLen = 128

// filterCondition returns an SQL condition that selects a superset of the rows whose
// topic filter matches, using the parameters from next on, and its arguments; the
// rows are then checked with driver.MatchTopic. A filter without wildcards is
// a primary-key lookup; one with wildcards is a range scan of the prefix index over
// its literal leading levels plus a LIKE pattern with '%' for each wildcard.
func filterCondition(filter string, next int) (string, []any) {
	param := func() string { next++; return "$" + strconv.Itoa(next-1) }
	if !strings.ContainsAny(filter, "+#") {
		return "th = " + param(), []any{hashOf(filter)}
	}
	var like []byte
	for i, level := range strings.Split(filter, "/") {
		if level == "#" {
			// "a/#" matches "a" too: the pattern may not require the '/'.
			like = append(bytesTrimSlash(like), '%')
			break
		}
		if i > 0 {
			like = append(like, '/')
		}
		if level == "+" {
			like = append(like, '%')
			continue
		}
		for j := 0; j < len(level); j++ {
			if c := level[j]; c == '\\' || c == '%' || c == '_' {
				like = append(like, '\\')
			}
			like = append(like, level[j])
		}
	}
	cond := "topic LIKE " + param()
	args := []any{like}
	prefix := driver.FilterPrefix(filter)
	if strings.HasSuffix(filter[len(prefix):], "#") {
		prefix = strings.TrimSuffix(prefix, "/")
	}
	if len(prefix) > prefixLen {
		prefix = prefix[:prefixLen]
	}
	if prefix != "" {
		lo := []byte(prefix)
		cond += " AND substring(topic, 1, 128) >= " + param()
		args = append(args, lo)
		if hi := successor(lo); hi != nil {
			cond += " AND substring(topic, 1, 128) < " + param()
			args = append(args, hi)
		}
	}
	return "(" + cond + ")", args
}

func bytesTrimSlash(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '/' && (n < 2 || b[n-2] != '\\') {
		return b[:n-1]
	}
	return b
}

// successor returns the smallest byte string greater than every string starting
// with b, or nil when there is none (b is all 0xFF).
func successor(b []byte) []byte {
	s := append([]byte(nil), b...)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] < 0xFF {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}

// RetainedLoad reads, a page at a time in topic-hash order, the rows selected by
// the OR of the filters' conditions (every row when filters is nil), and calls fn
// with no connection held for those whose topic matches a filter. One scan serves
// every filter, so a topic matching several is delivered once.
func (c *conn) RetainedLoad(ctx context.Context, filters []string, fn driver.RetainedLoader) error {
	if filters == nil {
		return c.scan(ctx, "true", []any{nil}, func(string) bool { return true }, fn)
	}
	var (
		conds []string
		args  = []any{nil} // $1 is the page key
		kept  []string
	)
	seen := map[string]bool{}
	for _, f := range filters {
		if seen[f] {
			continue
		}
		seen[f] = true
		kept = append(kept, f)
		cond, a := filterCondition(f, len(args)+1)
		conds = append(conds, cond)
		args = append(args, a...)
	}
	match := func(topic string) bool {
		for _, f := range kept {
			if driver.MatchTopic(f, topic) {
				return true
			}
		}
		return false
	}
	where := "(" + strings.Join(conds, " OR ") + ")"
	return c.scan(ctx, where, args, match, fn)
}

// scan pages through the rows satisfying where (args[0] is reserved for the page
// key) in th order and calls fn for those whose topic passes match.
func (c *conn) scan(ctx context.Context, where string, args []any, match func(string) bool, fn driver.RetainedLoader) error {
	type row struct{ th, topic, blob []byte }
	// Not cached by c.q: where varies with the filters.
	sql := c.qual.Replace(`SELECT th, topic, blob FROM mqtt_retained WHERE th > $1 AND ` + where +
		` ORDER BY th LIMIT ` + strconv.Itoa(pageSize))
	args[0] = []byte{}
	page := make([]row, 0, pageSize)
	for {
		page = page[:0]
		rows, err := c.pool.Query(ctx, sql, args...)
		if err != nil {
			return c.wrap(ctx, "load retained", err)
		}
		for rows.Next() {
			var rw row
			if err := rows.Scan(&rw.th, &rw.topic, &rw.blob); err != nil {
				rows.Close()
				return c.wrap(ctx, "load retained", err)
			}
			page = append(page, rw)
		}
		if err := rows.Err(); err != nil {
			return c.wrap(ctx, "load retained", err)
		}
		for i := range page {
			topic := string(page[i].topic)
			if !match(topic) {
				continue
			}
			pk, err := driver.DecodePacket(page[i].blob)
			if err != nil {
				return fmt.Errorf("postgres: retained message on %s: %w", show(topic), err)
			}
			if err := fn(&driver.RetainedMessage{Topic: topic, Packet: pk}); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		args[0] = page[len(page)-1].th
	}
}

// RetainedReplace replaces every row in one transaction: a DELETE, then COPY of
// the new rows.
func (c *conn) RetainedReplace(ctx context.Context, msgs []*driver.RetainedMessage) error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	last := make(map[string]int, len(msgs))
	for i, m := range msgs {
		last[m.Topic] = i
	}
	rows := make([][]any, 0, len(last))
	for i, m := range msgs {
		if last[m.Topic] == i {
			rows = append(rows, []any{hashOf(m.Topic), []byte(m.Topic), driver.EncodePacket(nil, m.Packet)})
		}
	}
	if len(rows) == 0 {
		_, err := c.pool.Exec(ctx, c.q(`DELETE FROM mqtt_retained`))
		return c.wrap(ctx, "wipe retained", err)
	}
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, c.q(`DELETE FROM mqtt_retained`)); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{c.schema, "mqtt_retained"}, []string{"th", "topic", "blob"}, pgx.CopyFromRows(rows))
		return err
	})
	return c.wrap(ctx, "store retained", err)
}

// RetainedCount counts the rows.
func (c *conn) RetainedCount(ctx context.Context) (uint64, error) {
	var n int64
	err := c.pool.QueryRow(ctx, c.q(`SELECT count(*) FROM mqtt_retained`)).Scan(&n)
	return uint64(n), c.wrap(ctx, "count retained", err)
}
