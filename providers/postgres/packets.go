package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// firstPage is the first page of PacketsForEach, the following ones pageSize: an
// iteration that stops early (a broker reading the next half window of a queue)
// reads little for nothing, and one that goes on (the broker's delivery pump
// reads 256 packets ahead) takes two round trips, not one per doubling page.
const firstPage = 32

// PacketGet reads one packet by its primary key.
func (c *conn) PacketGet(ctx context.Context, id string, class driver.PacketClass, seq uint64) (*driver.PersistedPacket, error) {
	var blob []byte
	err := c.pool.QueryRow(ctx, c.q(`SELECT blob FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq = $3`),
		hashOf(id), int16(class), seqArg(seq)).Scan(&blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFoundPacket(id, class, seq)
	}
	if err != nil {
		return nil, c.wrap(ctx, "get packet", err)
	}
	return decodePacket(id, class, seq, blob)
}

func decodePacket(id string, class driver.PacketClass, seq uint64, blob []byte) (*driver.PersistedPacket, error) {
	pk, err := driver.DecodePacket(blob)
	if err != nil {
		return nil, fmt.Errorf("postgres: session %s: %s packet %d: %w", show(id), class, seq, err)
	}
	pk.Seq = seq
	return pk, nil
}

// PacketCount counts one queue's primary-key range.
func (c *conn) PacketCount(ctx context.Context, id string, class driver.PacketClass) (uint64, error) {
	var n int64
	err := c.pool.QueryRow(ctx, c.q(`SELECT (SELECT count(*) FROM mqtt_packets WHERE h = $1 AND class = $2)
		FROM mqtt_sessions WHERE h = $1`), hashOf(id), int16(class)).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFoundSession(id)
	}
	if err != nil {
		return 0, c.wrap(ctx, "count packets", err)
	}
	return uint64(n), nil
}

// PacketsForEach reads the queue a page at a time (keyset pagination on seq, up to
// the last seq present when it started, so packets appended meanwhile are not
// visited) and calls fn with no connection held. The first page is read in the
// same round trip as that bound (and the session check); the deletions fn asks
// for are sent with the query for the next page, in the same round trip. Pages
// are firstPage rows, then pageSize (see firstPage).
func (c *conn) PacketsForEach(ctx context.Context, id string, class driver.PacketClass, fn driver.PacketLoader) error {
	h := hashOf(id)
	type row struct {
		seq  int64
		blob []byte
	}
	var (
		limit *int64
		last  int64
		dels  []int64
		first = true
		size  = firstPage
		page  = make([]row, 0, firstPage)
	)
	// flush applies the pending deletions alone, when the iteration ends, even
	// when it ends because ctx did: they were asked for, and a broker must not see
	// acknowledged packets again.
	flush := func(result error) error {
		if len(dels) == 0 {
			return result
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, err := c.pool.Exec(fctx, c.q(deleteSeqs), h, int16(class), dels, dels[0], dels[len(dels)-1])
		if err != nil {
			return errors.Join(result, c.wrap(ctx, "delete iterated packets", err))
		}
		return result
	}
	for {
		page = page[:0]
		var b pgx.Batch
		// A queue is read in seq order from the index, never by a bitmap scan of
		// every row of the session's class and a sort: the planner's estimate of
		// rows per session is an average (or, before the first ANALYZE, a default
		// of a few rows), so for one long queue (a device offline for a day) it
		// would pick the bitmap and read the whole queue for each page.
		b.Queue(`BEGIN`)
		b.Queue(`SET LOCAL enable_bitmapscan = off`)
		if first {
			b.Queue(c.q(`SELECT (SELECT max(seq) FROM mqtt_packets WHERE h = $1 AND class = $2)
				FROM mqtt_sessions WHERE h = $1`), h, int16(class))
			b.Queue(c.q(`SELECT seq, blob FROM mqtt_packets WHERE h = $1 AND class = $2
				ORDER BY seq LIMIT $3`), h, int16(class), size)
		} else {
			if len(dels) > 0 {
				b.Queue(c.q(deleteSeqs), h, int16(class), dels, dels[0], dels[len(dels)-1])
			}
			b.Queue(c.q(`SELECT seq, blob FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq > $3 AND seq <= $4
				ORDER BY seq LIMIT $5`), h, int16(class), last, *limit, size)
		}
		b.Queue(`COMMIT`)
		missing := false
		err := func() error {
			br := c.pool.SendBatch(ctx, &b)
			defer br.Close()
			for range 2 { // BEGIN, SET LOCAL
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			if first {
				err := br.QueryRow().Scan(&limit)
				if errors.Is(err, pgx.ErrNoRows) {
					missing = true
					return nil
				}
				if err != nil {
					return err
				}
			} else if len(dels) > 0 {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.seq, &r.blob); err != nil {
					rows.Close()
					return err
				}
				page = append(page, r)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if _, err := br.Exec(); err != nil { // COMMIT
				return err
			}
			return br.Close()
		}()
		if err != nil {
			return flush(c.wrap(ctx, "iterate packets", err))
		}
		if missing {
			return notFoundSession(id)
		}
		if limit == nil {
			return nil
		}
		full := len(page) == size
		size = pageSize
		if first {
			// The first page was read beside the bound, not under it.
			for len(page) > 0 && page[len(page)-1].seq > *limit {
				page = page[:len(page)-1]
				full = false
			}
			first = false
		}
		dels = dels[:0]
		for i := range page {
			r := &page[i]
			pk, err := decodePacket(id, class, uint64(r.seq), r.blob)
			if err != nil {
				return flush(err)
			}
			del, ferr := fn(pk)
			if del {
				dels = append(dels, r.seq)
			}
			if ferr != nil {
				return flush(ferr)
			}
		}
		if !full {
			return flush(nil)
		}
		last = page[len(page)-1].seq
	}
}

// deleteSeqs deletes the listed packets of one queue ($3, ascending). The range
// bounds ($4, $5) make it an index range scan; with "seq = ANY" alone the planner
// may scan the whole queue for each page of acknowledgements.
const deleteSeqs = `DELETE FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq BETWEEN $4 AND $5 AND seq = ANY($3)`
