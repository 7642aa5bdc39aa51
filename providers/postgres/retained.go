package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence"
)

type retained provider

func (r *retained) p() *provider { return (*provider)(r) }

func validateRetained(topic string, pk *persistence.PersistedPacket) error {
	if topic == "" {
		return fmt.Errorf("postgres: %w: empty topic for a retained message", persistence.ErrInvalidArgument)
	}
	if err := persistence.ValidatePacket(pk); err != nil {
		return fmt.Errorf("postgres: retained message on %s: %w", show(topic), err)
	}
	return nil
}

// Put upserts the topic's row.
func (r *retained) Put(ctx context.Context, topic string, pk *persistence.PersistedPacket) error {
	if err := validateRetained(topic, pk); err != nil {
		return err
	}
	return r.p().write(ctx, &stmt{
		what: "put retained",
		sql: `INSERT INTO mqtt_retained (th, topic, blob) VALUES ($1, $2, $3)
			ON CONFLICT (th) DO UPDATE SET topic = EXCLUDED.topic, blob = EXCLUDED.blob`,
		args: []any{hashOf(topic), []byte(topic), persistence.EncodePacket(nil, pk)},
	})
}

// Get reads the topic's row.
func (r *retained) Get(ctx context.Context, topic string) (*persistence.PersistedPacket, error) {
	p := r.p()
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	var blob []byte
	err := p.pool.QueryRow(ctx, `SELECT blob FROM mqtt_retained WHERE th = $1`, hashOf(topic)).Scan(&blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: retained message on %s: %w", show(topic), persistence.ErrNotFound)
	}
	if err != nil {
		return nil, p.wrap(ctx, "get retained", err)
	}
	pk, err := persistence.DecodePacket(blob)
	if err != nil {
		return nil, fmt.Errorf("postgres: retained message on %s: %w", show(topic), err)
	}
	return pk, nil
}

// Delete deletes the topic's row.
func (r *retained) Delete(ctx context.Context, topic string) error {
	return r.p().write(ctx, &stmt{
		what: "delete retained",
		sql:  `DELETE FROM mqtt_retained WHERE th = $1`,
		args: []any{hashOf(topic)},
	})
}

// prefixLen is how many leading bytes of a topic the prefix index holds.
const prefixLen = 128

// filterCondition returns an SQL condition that selects a superset of the rows whose
// topic filter matches, using the parameters from next on, and its arguments; the
// rows are then checked with persistence.MatchTopic. A filter without wildcards is
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
	prefix := persistence.FilterPrefix(filter)
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

// LoadMatching reads, a page at a time in topic-hash order, the rows selected by
// the OR of the filters' conditions, and calls fn with no connection held for those
// whose topic matches a filter. One scan serves every filter, so a topic matching
// several is delivered once.
func (r *retained) LoadMatching(ctx context.Context, filters []string, fn persistence.RetainedLoader) error {
	p := r.p()
	if err := p.check(ctx); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("postgres: %w: nil RetainedLoader", persistence.ErrInvalidArgument)
	}
	var (
		conds []string
		args  = []any{nil} // $1 is the page key
		kept  []string
	)
	seen := map[string]bool{}
	for _, f := range filters {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		kept = append(kept, f)
		c, a := filterCondition(f, len(args)+1)
		conds = append(conds, c)
		args = append(args, a...)
	}
	if len(conds) == 0 {
		return nil
	}
	match := func(topic string) bool {
		for _, f := range kept {
			if persistence.MatchTopic(f, topic) {
				return true
			}
		}
		return false
	}
	where := "(" + strings.Join(conds, " OR ") + ")"
	return r.scan(ctx, where, args, match, fn)
}

// Load reads every row, a page at a time.
func (r *retained) Load(ctx context.Context, fn persistence.RetainedLoader) error {
	p := r.p()
	if err := p.check(ctx); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("postgres: %w: nil RetainedLoader", persistence.ErrInvalidArgument)
	}
	return r.scan(ctx, "true", []any{nil}, func(string) bool { return true }, fn)
}

// scan pages through the rows satisfying where (args[0] is reserved for the page
// key) in th order and calls fn for those whose topic passes match.
func (r *retained) scan(ctx context.Context, where string, args []any, match func(string) bool, fn persistence.RetainedLoader) error {
	p := r.p()
	type row struct{ th, topic, blob []byte }
	sql := `SELECT th, topic, blob FROM mqtt_retained WHERE th > $1 AND ` + where +
		` ORDER BY th LIMIT ` + strconv.Itoa(pageSize)
	args[0] = []byte{}
	page := make([]row, 0, pageSize)
	for {
		if err := p.check(ctx); err != nil {
			return err
		}
		page = page[:0]
		rows, err := p.pool.Query(ctx, sql, args...)
		if err != nil {
			return p.wrap(ctx, "load retained", err)
		}
		for rows.Next() {
			var rw row
			if err := rows.Scan(&rw.th, &rw.topic, &rw.blob); err != nil {
				rows.Close()
				return p.wrap(ctx, "load retained", err)
			}
			page = append(page, rw)
		}
		if err := rows.Err(); err != nil {
			return p.wrap(ctx, "load retained", err)
		}
		for i := range page {
			if err := ctx.Err(); err != nil {
				return err
			}
			topic := string(page[i].topic)
			if !match(topic) {
				continue
			}
			pk, err := persistence.DecodePacket(page[i].blob)
			if err != nil {
				return fmt.Errorf("postgres: retained message on %s: %w", show(topic), err)
			}
			if err := fn(&persistence.RetainedMessage{Topic: topic, Packet: pk}); err != nil {
				return iterResult(err)
			}
		}
		if len(page) < pageSize {
			return nil
		}
		args[0] = page[len(page)-1].th
	}
}

// Store replaces every row in one transaction: a DELETE, then COPY of the new rows.
func (r *retained) Store(ctx context.Context, msgs []*persistence.RetainedMessage) error {
	p := r.p()
	if err := p.check(ctx); err != nil {
		return err
	}
	last := make(map[string]int, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("postgres: %w: nil retained message at index %d", persistence.ErrInvalidArgument, i)
		}
		if err := validateRetained(m.Topic, m.Packet); err != nil {
			return err
		}
		last[m.Topic] = i
	}
	rows := make([][]any, 0, len(last))
	for i, m := range msgs {
		if last[m.Topic] == i {
			rows = append(rows, []any{hashOf(m.Topic), []byte(m.Topic), persistence.EncodePacket(nil, m.Packet)})
		}
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM mqtt_retained`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"mqtt_retained"}, []string{"th", "topic", "blob"}, pgx.CopyFromRows(rows))
		return err
	})
	return p.wrap(ctx, "store retained", err)
}

// Count counts the rows.
func (r *retained) Count(ctx context.Context) (uint64, error) {
	p := r.p()
	if err := p.check(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := p.pool.QueryRow(ctx, `SELECT count(*) FROM mqtt_retained`).Scan(&n)
	return uint64(n), p.wrap(ctx, "count retained", err)
}

// Wipe deletes every row.
func (r *retained) Wipe(ctx context.Context) error {
	return r.p().write(ctx, &stmt{what: "wipe retained", sql: `DELETE FROM mqtt_retained`})
}
