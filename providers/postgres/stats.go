package postgres

import (
	"context"
	"encoding/binary"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

var _ driver.PacketStatsConn = (*conn)(nil)

// statsPage is the default of conn.statsPage: how many sessions one
// PacketStatsForEach round trip covers.
const statsPage = 10000

// dataLenSQL is len(Data) of a packet blob without an expiry (FORMAT.md: kind,
// version, flags, packet id, QoS, protocol version, uvarint len(Data), Data,
// CRC-32C): n = len(Data) + the uvarint's length, which has one solution.
const dataLenSQL = `CASE WHEN n <= 128 THEN n - 1 WHEN n <= 16385 THEN n - 2
	WHEN n <= 2097154 THEN n - 3 WHEN n <= 268435459 THEN n - 4 ELSE n - 5 END`

// statsSQL counts one page of sessions' packets by class in one pass: blobs
// without an expiry are summed on the server (their header is NULL); the few with
// one (whose header has varints before the length) are grouped by their first 40
// bytes, which Go parses (headerDataLen) and multiplies by the group's count. The
// subquery is a fence (OFFSET 0): the aggregate is fed the projected columns, not
// the blobs; and with no ORDER BY the planner hashes the groups in memory rather
// than sorting every packet row on disk (100k packets: 270 ms → 135 ms through the
// driver on a fresh connection, 40 ms in a warm psql session).
const statsSQL = `SELECT h, class, count(*), sum(` + dataLenSQL + `)::bigint, hdr FROM (
		SELECT p.h, p.class, octet_length(p.blob) - 11 AS n,
			CASE WHEN octet_length(p.blob) < 12 OR get_byte(p.blob, 2) & 1 <> 0
				THEN substring(p.blob FROM 1 FOR 40) END AS hdr
		FROM mqtt_packets p WHERE p.h > $1 AND p.h <= COALESCE(
			(SELECT h FROM mqtt_sessions WHERE h > $1 ORDER BY h OFFSET $2 - 1 LIMIT 1), $3)
		OFFSET 0) r
	GROUP BY h, class, hdr`

// PacketStatsForEach reads a page of sessions (their ids) and the counts of their
// packets by class in one pipelined batch per page, and calls fn with no
// connection held.
func (c *conn) PacketStatsForEach(ctx context.Context, fn driver.PacketStatsLoader) error {
	last := []byte{}
	var (
		page []driver.PacketStats
		at   = make(map[string]int, c.statsPage)
		h    []byte // a session's hash, or an aggregate's
	)
	for {
		page = nil // fn may keep what it is handed
		clear(at)
		var b pgx.Batch
		b.Queue(c.q(`SELECT h, id FROM mqtt_sessions WHERE h > $1 ORDER BY h LIMIT $2`), last, c.statsPage)
		b.Queue(c.q(statsSQL), last, c.statsPage, pastEveryHash)
		err := func() error {
			br := c.pool.SendBatch(ctx, &b)
			defer br.Close()
			rows, _ := br.Query()
			var id []byte
			if _, err := pgx.ForEachRow(rows, []any{&h, &id}, func() error {
				at[string(h)] = len(page)
				page = append(page, driver.PacketStats{ID: string(id)})
				return nil
			}); err != nil {
				return err
			}
			if len(page) > 0 {
				last = append(last[:0], h...) // the page's last session
			}
			// Packets of a session created between the two queries have no
			// session in page and are skipped.
			var (
				class  int16
				n, sum int64
				header []byte
			)
			rows, _ = br.Query()
			if _, err := pgx.ForEachRow(rows, []any{&h, &class, &n, &sum, &header}, func() error {
				i, ok := at[string(h)]
				pc := driver.PacketClass(class)
				if !ok || !pc.Valid() {
					return nil
				}
				cs := &page[i].Classes[pc-1]
				cs.Count += uint64(n)
				if header == nil {
					cs.Bytes += uint64(sum)
				} else {
					cs.Bytes += uint64(n) * headerDataLen(header)
				}
				return nil
			}); err != nil {
				return err
			}
			return br.Close()
		}()
		if err != nil {
			return c.wrap(ctx, "packet stats", err)
		}
		for i := range page {
			if page[i].Empty() {
				continue
			}
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < c.statsPage {
			return nil
		}
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
