package postgres

import (
	"context"
	"encoding/binary"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

var _ driver.PacketStatsConn = (*conn)(nil)

// statsPage is how many sessions one PacketStatsForEach round trip covers.
const statsPage = 10000

// dataLenSQL is len(Data) of a packet blob without an expiry (FORMAT.md: kind,
// version, flags, packet id, QoS, protocol version, uvarint len(Data), Data,
// CRC-32C): n = len(Data) + the uvarint's length, which has one solution.
const dataLenSQL = `CASE WHEN n <= 128 THEN n - 1 WHEN n <= 16385 THEN n - 2
	WHEN n <= 2097154 THEN n - 3 WHEN n <= 268435459 THEN n - 4 ELSE n - 5 END`

// statsSQL counts one page of sessions' packets by class: blobs without an
// expiry are summed on the server; the few with one (whose header has varints
// before the length) come back as headers that Go parses.
const statsSQL = `WITH r AS (SELECT p.h, p.class, octet_length(p.blob) - 11 AS n,
		CASE WHEN octet_length(p.blob) < 12 THEN 2 ELSE get_byte(p.blob, 2) & 1 END AS x,
		p.blob
	FROM mqtt_packets p WHERE p.h > $1 AND p.h <= COALESCE(
		(SELECT h FROM mqtt_sessions WHERE h > $1 ORDER BY h OFFSET $2 - 1 LIMIT 1), $3))
SELECT h, class, count(*), sum(` + dataLenSQL + `)::bigint, NULL::bytea FROM r WHERE x = 0 GROUP BY h, class
UNION ALL
SELECT h, class, 1, 0, substring(blob FROM 1 FOR 40) FROM r WHERE x <> 0
ORDER BY 1`

// PacketStatsForEach reads a page of sessions (their ids) and the counts of their
// packets by class in one pipelined batch per page, and calls fn with no
// connection held.
func (c *conn) PacketStatsForEach(ctx context.Context, fn driver.PacketStatsLoader) error {
	type sess struct{ h, id []byte }
	type agg struct {
		h      []byte
		class  int16
		n, sum int64
		header []byte
	}
	last := []byte{}
	var page []sess
	var aggs []agg
	for {
		page, aggs = page[:0], aggs[:0]
		var b pgx.Batch
		b.Queue(c.q(`SELECT h, id FROM mqtt_sessions WHERE h > $1 ORDER BY h LIMIT $2`), last, statsPage)
		b.Queue(c.q(statsSQL), last, statsPage, pastEveryHash)
		err := func() error {
			br := c.pool.SendBatch(ctx, &b)
			defer br.Close()
			rows, err := br.Query()
			if err != nil {
				return err
			}
			var s sess
			if _, err := pgx.ForEachRow(rows, []any{&s.h, &s.id}, func() error {
				page = append(page, s)
				return nil
			}); err != nil {
				return err
			}
			rows, err = br.Query()
			if err != nil {
				return err
			}
			var a agg
			if _, err := pgx.ForEachRow(rows, []any{&a.h, &a.class, &a.n, &a.sum, &a.header}, func() error {
				aggs = append(aggs, a)
				return nil
			}); err != nil {
				return err
			}
			return br.Close()
		}()
		if err != nil {
			return c.wrap(ctx, "packet stats", err)
		}
		// Both lists are in h order: merge. Packets of a session created between
		// the two queries have no row in page and are skipped.
		j := 0
		for i := range page {
			s := &page[i]
			for j < len(aggs) && string(aggs[j].h) < string(s.h) {
				j++
			}
			st := &driver.PacketStats{ID: string(s.id)}
			for ; j < len(aggs) && string(aggs[j].h) == string(s.h); j++ {
				a := &aggs[j]
				class := driver.PacketClass(a.class)
				if !class.Valid() {
					continue
				}
				cs := &st.Classes[class-1]
				cs.Count += uint64(a.n)
				if a.header == nil {
					cs.Bytes += uint64(a.sum)
				} else {
					cs.Bytes += headerDataLen(a.header)
				}
			}
			if st.Empty() {
				continue
			}
			if err := fn(st); err != nil {
				return err
			}
		}
		if len(page) < statsPage {
			return nil
		}
		last = page[len(page)-1].h
	}
}

// headerDataLen reads len(Data) from the first bytes of a packet blob with an
// expiry (FORMAT.md); a blob too broken to tell counts 0 bytes (reading it
// reports ErrBrokenEntry).
func headerDataLen(h []byte) uint64 {
	if len(h) < 8 {
		return 0
	}
	r := h[7:]
	if h[2]&1 != 0 {
		for range 2 { // seconds (varint), nanoseconds (uvarint)
			_, n := binary.Uvarint(r)
			if n <= 0 {
				return 0
			}
			r = r[n:]
		}
	}
	l, n := binary.Uvarint(r)
	if n <= 0 {
		return 0
	}
	return l
}
