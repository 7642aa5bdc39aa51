package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence"
)

// PacketAppend inserts the packet with the next store-wide sequence number.
func (ss *sessions) PacketAppend(ctx context.Context, id string, class persistence.PacketClass, p *persistence.PersistedPacket) (uint64, error) {
	if !class.Valid() {
		return 0, invalidClass(class)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	var seq int64
	if err := ss.p().write(ctx, appendStmt(id, class, p, &seq)); err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

// PacketGet reads one packet by its primary key.
func (ss *sessions) PacketGet(ctx context.Context, id string, class persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	if !class.Valid() {
		return nil, invalidClass(class)
	}
	p := ss.p()
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	var blob []byte
	err := p.pool.QueryRow(ctx, `SELECT blob FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq = $3`,
		hashOf(id), int16(class), seqArg(seq)).Scan(&blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFoundPacket(id, class, seq)
	}
	if err != nil {
		return nil, p.wrap(ctx, "get packet", err)
	}
	return decodePacket(id, class, seq, blob)
}

func decodePacket(id string, class persistence.PacketClass, seq uint64, blob []byte) (*persistence.PersistedPacket, error) {
	pk, err := persistence.DecodePacket(blob)
	if err != nil {
		return nil, fmt.Errorf("postgres: session %s: %s packet %d: %w", show(id), class, seq, err)
	}
	pk.Seq = seq
	return pk, nil
}

// PacketUpdate replaces the blob of an existing packet row.
func (ss *sessions) PacketUpdate(ctx context.Context, id string, class persistence.PacketClass, p *persistence.PersistedPacket) error {
	if !class.Valid() {
		return invalidClass(class)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return ss.p().write(ctx, updateStmt(id, class, p))
}

// PacketDelete deletes one packet row.
func (ss *sessions) PacketDelete(ctx context.Context, id string, class persistence.PacketClass, seq uint64) error {
	if !class.Valid() {
		return invalidClass(class)
	}
	return ss.p().write(ctx, packetDeleteStmt(id, class, seq))
}

// PacketCount counts one queue's primary-key range.
func (ss *sessions) PacketCount(ctx context.Context, id string, class persistence.PacketClass) (uint64, error) {
	if !class.Valid() {
		return 0, invalidClass(class)
	}
	p := ss.p()
	if err := p.check(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := p.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM mqtt_packets WHERE h = $1 AND class = $2)
		FROM mqtt_sessions WHERE h = $1`, hashOf(id), int16(class)).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFoundSession(id)
	}
	if err != nil {
		return 0, p.wrap(ctx, "count packets", err)
	}
	return uint64(n), nil
}

// PacketsForEach reads the queue a page at a time (keyset pagination on seq, up to
// the last seq present when it started, so packets appended meanwhile are not
// visited) and calls fn with no connection held. The deletions fn asks for are
// sent with the query for the next page, in the same round trip.
func (ss *sessions) PacketsForEach(ctx context.Context, id string, class persistence.PacketClass, fn persistence.PacketLoader) error {
	if !class.Valid() {
		return invalidClass(class)
	}
	if fn == nil {
		return fmt.Errorf("postgres: %w: nil PacketLoader", persistence.ErrInvalidArgument)
	}
	p := ss.p()
	if err := p.check(ctx); err != nil {
		return err
	}
	h := hashOf(id)
	var limit *int64
	err := p.pool.QueryRow(ctx, `SELECT (SELECT max(seq) FROM mqtt_packets WHERE h = $1 AND class = $2)
		FROM mqtt_sessions WHERE h = $1`, h, int16(class)).Scan(&limit)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFoundSession(id)
	}
	if err != nil {
		return p.wrap(ctx, "iterate packets", err)
	}
	if limit == nil {
		return nil
	}
	type row struct {
		seq  int64
		blob []byte
	}
	var (
		last int64
		dels []int64
		page = make([]row, 0, pageSize)
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
		_, err := p.pool.Exec(fctx, deleteSeqs, h, int16(class), dels, dels[0], dels[len(dels)-1])
		if err != nil {
			return errors.Join(result, p.wrap(ctx, "delete iterated packets", err))
		}
		return result
	}
	for {
		if err := p.check(ctx); err != nil {
			return flush(err)
		}
		page = page[:0]
		var b pgx.Batch
		if len(dels) > 0 {
			b.Queue(deleteSeqs, h, int16(class), dels, dels[0], dels[len(dels)-1])
		}
		b.Queue(`SELECT seq, blob FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq > $3 AND seq <= $4
			ORDER BY seq LIMIT $5`, h, int16(class), last, *limit, pageSize)
		err := func() error {
			br := p.pool.SendBatch(ctx, &b)
			defer br.Close()
			if len(dels) > 0 {
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
			return br.Close()
		}()
		if err != nil {
			return flush(p.wrap(ctx, "iterate packets", err))
		}
		dels = dels[:0]
		for i := range page {
			if err := ctx.Err(); err != nil {
				return flush(err)
			}
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
				return flush(iterResult(ferr))
			}
		}
		if len(page) < pageSize {
			return flush(nil)
		}
		last = page[len(page)-1].seq
	}
}

// deleteSeqs deletes the listed packets of one queue ($3, ascending). The range
// bounds ($4, $5) make it an index range scan; with "seq = ANY" alone the planner
// may scan the whole queue for each page of acknowledgements.
const deleteSeqs = `DELETE FROM mqtt_packets WHERE h = $1 AND class = $2 AND seq BETWEEN $4 AND $5 AND seq = ANY($3)`

// PacketsStore inserts every packet in one statement (one round trip, atomic),
// numbering them in slice order, classes in their fixed order.
func (ss *sessions) PacketsStore(ctx context.Context, id string, pp *persistence.PersistedPackets) error {
	if pp == nil {
		return fmt.Errorf("postgres: %w: nil PersistedPackets", persistence.ErrInvalidArgument)
	}
	var (
		classes []int16
		blobs   [][]byte
	)
	for _, c := range persistence.PacketClasses {
		for _, pk := range pp.Class(c) {
			if err := persistence.ValidatePacket(pk); err != nil {
				return fmt.Errorf("postgres: %s: %w", c, err)
			}
			classes = append(classes, int16(c))
			blobs = append(blobs, persistence.EncodePacket(nil, pk))
		}
	}
	var one int32
	s := &stmt{
		what: "store packets",
		sql: `WITH s AS (SELECT h FROM mqtt_sessions WHERE h = $1),
			i AS (INSERT INTO mqtt_packets (h, class, seq, blob)
				SELECT s.h, t.c, nextval('mqtt_packet_seq'), t.b
				FROM s, unnest($2::smallint[], $3::bytea[]) WITH ORDINALITY AS t(c, b, o) ORDER BY t.o)
			SELECT 1 FROM s`,
		args:  []any{hashOf(id), classes, blobs},
		dest:  []any{&one},
		noRow: func() error { return notFoundSession(id) },
	}
	p := ss.p()
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.runOne(ctx, s)
}

// PacketsDelete deletes the given classes (all when none are given).
func (ss *sessions) PacketsDelete(ctx context.Context, id string, classes ...persistence.PacketClass) error {
	if len(classes) == 0 {
		classes = persistence.PacketClasses
	}
	cs := make([]int16, len(classes))
	for i, c := range classes {
		if !c.Valid() {
			return invalidClass(c)
		}
		cs[i] = int16(c)
	}
	return ss.p().write(ctx, packetsDeleteStmt(id, cs))
}
