package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/internal/groupcommit"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// packetWriteRuns reports whether ops are fences followed by packet deletes and
// packet appends only, of any sessions, in any order, at least one delete or
// append: what a broker commits for a fan-out (the acknowledgements it carries,
// the appends to every matching session), a move of a queue page in flight and a
// flush of acknowledgements, in cluster mode each with its sessions' fences.
// Anything else, or a lone delete or append without fences (which has a simpler
// statement of its own), is not one.
func packetWriteRuns(ops []driver.Op) bool {
	fences, writes := 0, 0
	for i := range ops {
		switch ops[i].Kind {
		case driver.OpFence:
			if writes > 0 {
				return false
			}
			fences++
		case driver.OpPacketDelete, driver.OpPacketAppend:
			writes++
		default:
			return false
		}
	}
	return writes > 0 && (fences > 0 || writes > 1)
}

// packetWrite is one caller's fenced packet deletes and appends, written by
// packetWriteSQL: alone, or merged with the other callers' of a group into one
// statement, where each caller's writes still happen or not by themselves.
type packetWrite struct {
	fences   []fenceOp // distinct
	sessions []string  // every session written, once, in order
	sh       [][]byte  // their hashes
	dels     []deleteOp
	apps     []appendOp
	seqs     []int64 // the appends' sequence numbers, in order
}

// fenceOp is a Fence's values.
type fenceOp struct {
	id    string
	epoch uint64
	h     []byte
}

// deleteOp is a PacketDelete's values.
type deleteOp struct {
	h     []byte
	class int16
	seq   int64
}

// appendOp is a PacketAppend's values.
type appendOp struct {
	h     []byte
	class int16
	blob  []byte
}

// newPacketWrite returns the packetWrite of ops (see packetWriteRuns, though any
// mix of fences, packet deletes and packet appends is written right), whose
// appends' sequence numbers go to seqs.
func newPacketWrite(ops []driver.Op, seqs []int64) *packetWrite {
	w := &packetWrite{seqs: seqs}
	seen := map[string]bool{}
	for i := range ops {
		op := &ops[i]
		if op.Kind == driver.OpFence {
			dup := false
			for _, f := range w.fences {
				dup = dup || (f.id == op.ID && f.epoch == op.Epoch)
			}
			if !dup {
				w.fences = append(w.fences, fenceOp{op.ID, op.Epoch, hashOf(op.ID)})
			}
			continue
		}
		h := hashOf(op.ID)
		if !seen[op.ID] {
			seen[op.ID] = true
			w.sessions, w.sh = append(w.sessions, op.ID), append(w.sh, h)
		}
		if op.Kind == driver.OpPacketDelete {
			w.dels = append(w.dels, deleteOp{h, int16(op.Class), seqArg(op.Seq)})
			continue
		}
		w.apps = append(w.apps, appendOp{h, int16(op.Class), driver.EncodePacket(nil, op.Packet)})
	}
	return w
}

// packetWriteStmt writes ops (see packetWriteRuns) as ONE statement, atomic by
// itself: it checks every fence, holding the owner rows (FOR SHARE, as fenceStmt)
// until the transaction ends, and writes nothing unless every fence holds and every
// session named exists. Being one statement, it goes through the group committer
// like any single write, merged there with the other callers' packet writes (see
// packetWrites), in the group's one round trip and implicit transaction, where the
// same writes as several statements would be an explicit transaction of two round
// trips. The appends' sequence numbers go to seqs, in order.
func packetWriteStmt(ops []driver.Op, seqs []int64) *stmt {
	w := newPacketWrite(ops, seqs)
	ws := packetWrites{w}
	var res packetWriteResult
	return &stmt{
		what: "write packets",
		sql:  packetWriteSQL,
		args: ws.args(),
		dest: res.dest(),
		pw:   w,
		post: func() error { return ws.outcomes(&res)[0] },
	}
}

// packetWrites is the packet writes of several callers, merged into one
// packetWriteSQL; caller i is request i+1 in its arrays.
type packetWrites []*packetWrite

// args returns packetWriteSQL's arguments for ws.
func (ws packetWrites) args() []any {
	var (
		fr, sr, dr, ar []int32
		fh, sh, dh, ah [][]byte
		fe, ds         []int64
		dc, ac         []int16
		ab             [][]byte
	)
	for i, w := range ws {
		r := int32(i + 1)
		for _, f := range w.fences {
			fr, fh, fe = append(fr, r), append(fh, f.h), append(fe, seqArg(f.epoch))
		}
		for _, h := range w.sh {
			sr, sh = append(sr, r), append(sh, h)
		}
		for _, d := range w.dels {
			dr, dh, dc, ds = append(dr, r), append(dh, d.h), append(dc, d.class), append(ds, d.seq)
		}
		for _, a := range w.apps {
			ar, ah, ac, ab = append(ar, r), append(ah, a.h), append(ac, a.class), append(ab, a.blob)
		}
	}
	return []any{fr, fh, fe, sr, sh, dr, dh, dc, ds, ar, ah, ac, ab}
}

// packetWriteResult is packetWriteSQL's row.
type packetWriteResult struct {
	fr     []int32  // the fences that hold: request,
	fh     [][]byte // session hash
	fe     []int64  // and epoch
	mr     []int32  // the sessions missing: request,
	mh     [][]byte // and hash
	o, seq []int64  // the appends made, by ordinality, and their sequence numbers
}

func (res *packetWriteResult) dest() []any {
	return []any{&res.fr, &res.fh, &res.fe, &res.mr, &res.mh, &res.o, &res.seq}
}

// outcomes returns each caller's outcome from res, and gives the callers whose
// writes were made their sequence numbers: a fence that does not hold is
// ErrFenced (the first such fence names it), a missing session ErrNotFound.
func (ws packetWrites) outcomes(res *packetWriteResult) []error {
	errs := make([]error, len(ws))
	seqOf := make(map[int64]int64, len(res.o))
	for i, o := range res.o {
		if i < len(res.seq) {
			seqOf[o] = res.seq[i]
		}
	}
	var off int64 // ordinality of the caller's first append, less one
	for i, w := range ws {
		r := int32(i + 1)
		errs[i] = w.outcome(r, res, off, seqOf)
		off += int64(len(w.apps))
	}
	return errs
}

func (w *packetWrite) outcome(r int32, res *packetWriteResult, off int64, seqOf map[int64]int64) error {
	for _, f := range w.fences {
		held := false
		for j := range res.fr {
			held = held || (res.fr[j] == r && j < len(res.fh) && j < len(res.fe) &&
				string(res.fh[j]) == string(f.h) && res.fe[j] == seqArg(f.epoch))
		}
		if !held {
			return fenced(f.id, f.epoch)
		}
	}
	for k, h := range w.sh {
		for j := range res.mr {
			if res.mr[j] == r && j < len(res.mh) && string(res.mh[j]) == string(h) {
				return notFoundSession(w.sessions[k])
			}
		}
	}
	for k := range w.apps {
		seq, ok := seqOf[off+int64(k)+1]
		if !ok || k >= len(w.seqs) {
			return fmt.Errorf("postgres: write packets: no sequence number for append %d of %d", k+1, len(w.apps))
		}
		w.seqs[k] = seq
	}
	return nil
}

// queuePacketWrites queues, on b, the one statement that writes the packet writes
// of the requests reqs (each with its pw).
func (c *conn) queuePacketWrites(b *pgx.Batch, reqs []*groupcommit.Request[*stmt]) packetWrites {
	ws := make(packetWrites, len(reqs))
	for i, r := range reqs {
		ws[i] = r.Value.pw
	}
	b.Queue(c.q(packetWriteSQL), ws.args()...)
	return ws
}

// readPacketWrites reads the row of queuePacketWrites' statement and returns each
// request's outcome. Each request's post is not run: its outcome is computed here.
func readPacketWrites(br pgx.BatchResults, ws packetWrites) ([]error, error) {
	var res packetWriteResult
	if err := br.QueryRow().Scan(res.dest()...); err != nil {
		return nil, err
	}
	return ws.outcomes(&res), nil
}

// packetWriteSQL writes the packet deletes and appends of several requests,
// each request's only when every fence it carries holds and every session it
// writes exists. Fences: $1 request, $2 session hash, $3 epoch (distinct per
// request); sessions written: $4 request, $5 hash; deletes: $6 request, $7–$9
// (session, class, seq); appends: $10 request, $11–$13 (session, class, blob),
// numbered in order. It returns the fences that hold, the sessions missing (both
// with their request) and the appends' ordinalities and sequence numbers.
//
// The fence CTE locks the owner rows FOR SHARE: a claim's UPDATE of one waits for
// this transaction, and in READ COMMITTED a row a claim updated meanwhile is
// re-checked at its latest version, whose epoch then does not match (fenceStmt's
// rule, in the writes' own statement). A request's writes are made only once each
// of its fences was found, so locked; the final SELECT reads the CTE in full.
const packetWriteSQL = `WITH fx AS (SELECT * FROM unnest($1::int[], $2::bytea[], $3::bigint[]) AS x(r, h, e)),
	f AS (SELECT fx.r, fx.h, fx.e FROM fx JOIN mqtt_owners o ON o.h = fx.h AND o.epoch = fx.e FOR SHARE OF o),
	m AS (SELECT u.r, u.h FROM unnest($4::int[], $5::bytea[]) AS u(r, h)
		WHERE NOT EXISTS (SELECT 1 FROM mqtt_sessions s WHERE s.h = u.h)),
	bad AS (SELECT fx.r FROM fx WHERE NOT EXISTS (SELECT 1 FROM f WHERE f.r = fx.r AND f.h = fx.h AND f.e = fx.e)
		UNION SELECT r FROM m),
	d AS (DELETE FROM mqtt_packets p USING unnest($6::int[], $7::bytea[], $8::smallint[], $9::bigint[]) AS t(r, h, c, s)
		WHERE p.h = t.h AND p.class = t.c AND p.seq = t.s AND NOT EXISTS (SELECT 1 FROM bad WHERE bad.r = t.r)),
	t AS (SELECT t.o, t.h, t.c, t.b FROM unnest($10::int[], $11::bytea[], $12::smallint[], $13::bytea[]) WITH ORDINALITY AS t(r, h, c, b, o)
		WHERE NOT EXISTS (SELECT 1 FROM bad WHERE bad.r = t.r) ORDER BY t.o),
	v AS (SELECT o, h, c, b, nextval('mqtt_packet_seq') AS seq FROM t),
	i AS (INSERT INTO mqtt_packets (h, class, seq, blob) SELECT h, c, seq, b FROM v)
	SELECT (SELECT array_agg(r) FROM f), (SELECT array_agg(h) FROM f), (SELECT array_agg(e) FROM f),
		(SELECT array_agg(r) FROM m), (SELECT array_agg(h) FROM m),
		(SELECT array_agg(o ORDER BY o) FROM v), (SELECT array_agg(seq ORDER BY o) FROM v)`
