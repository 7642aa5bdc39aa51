package postgres

import (
	"fmt"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// packetWriteRuns reports whether ops are fences followed by packet deletes and
// packet appends only, of any sessions, in any order, at least one delete or
// append: what a broker commits for a fan-out (the acknowledgements it carries,
// the appends to every matching session), a move of a queue page in flight and a
// flush of acknowledgements, in cluster mode each with its sessions' fences.
// Anything else, or a lone delete or append without fences (which the group
// committer merges with other callers'), is not one.
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

// packetWriteStmt writes ops (see packetWriteRuns) as ONE statement, atomic by
// itself: it checks every fence, holding the owner rows (FOR SHARE, as fenceStmt)
// until the transaction ends, and writes nothing unless every fence holds and every
// session named exists. Being one statement, it goes through the group committer
// like any single write, in the group's one round trip and implicit transaction,
// where the same writes as several statements would be an explicit transaction of
// two round trips. The appends' sequence numbers go to seqs, in order.
func packetWriteStmt(ops []driver.Op, seqs []int64) *stmt {
	type fence struct {
		id    string
		epoch uint64
	}
	var fences []fence
	var fh [][]byte
	var fe []int64
	seen := map[string]bool{}
	var sessions []string // every session written, once, in order
	var sh [][]byte
	var dh, ah [][]byte
	var dc, ac []int16
	var ds []int64
	var ab [][]byte
	for i := range ops {
		op := &ops[i]
		if op.Kind == driver.OpFence {
			dup := false
			for _, f := range fences {
				dup = dup || f == fence{op.ID, op.Epoch}
			}
			if !dup {
				fences = append(fences, fence{op.ID, op.Epoch})
				fh, fe = append(fh, hashOf(op.ID)), append(fe, seqArg(op.Epoch))
			}
			continue
		}
		h := hashOf(op.ID)
		if !seen[op.ID] {
			seen[op.ID] = true
			sessions, sh = append(sessions, op.ID), append(sh, h)
		}
		if op.Kind == driver.OpPacketDelete {
			dh, dc, ds = append(dh, h), append(dc, int16(op.Class)), append(ds, seqArg(op.Seq))
			continue
		}
		ah, ac, ab = append(ah, h), append(ac, int16(op.Class)), append(ab, driver.EncodePacket(nil, op.Packet))
	}
	var held, missing [][]byte
	var got []int64
	s := &stmt{
		what: "write packets",
		sql:  packetWriteSQL,
		args: []any{fh, fe, len(fh), sh, dh, dc, ds, ah, ac, ab},
		dest: []any{&held, &missing, &got},
	}
	s.post = func() error {
		if len(held) != len(fences) {
			// The first fence that does not hold names the failure.
			for i, f := range fences {
				if !containsHash(held, fh[i]) {
					return fenced(f.id, f.epoch)
				}
			}
			return fenced(fences[0].id, fences[0].epoch)
		}
		if len(missing) > 0 {
			for i, id := range sessions {
				if containsHash(missing, sh[i]) {
					return notFoundSession(id)
				}
			}
			return notFoundSession(sessions[0])
		}
		if len(got) != len(seqs) {
			return fmt.Errorf("postgres: write packets: %d sequence numbers for %d packets", len(got), len(seqs))
		}
		copy(seqs, got)
		return nil
	}
	return s
}

// containsHash reports whether hs holds h.
func containsHash(hs [][]byte, h []byte) bool {
	for _, x := range hs {
		if string(x) == string(h) {
			return true
		}
	}
	return false
}

// packetWriteSQL is packetWriteStmt's statement. $1, $2: the fences' session
// hashes and epochs ($3 of them, distinct); $4: the hashes of the sessions
// written; $5–$7: the deletes (session, class, seq); $8–$10: the appends
// (session, class, blob), numbered in order. It returns the hashes of the fences
// that hold, of the sessions missing, and the appends' sequence numbers by
// ordinality; it writes only when every fence holds and no session is missing.
//
// The fence CTE locks the owner rows FOR SHARE: a claim's UPDATE of one waits for
// this transaction, and in READ COMMITTED a row a claim updated meanwhile is
// re-checked at its latest version, whose epoch then does not match (fenceStmt's
// rule, in the writes' own statement). The CTE is read in full by the final SELECT
// whatever the writes need of it.
const packetWriteSQL = `WITH f AS (SELECT o.h FROM unnest($1::bytea[], $2::bigint[]) AS x(h, e)
		JOIN mqtt_owners o ON o.h = x.h AND o.epoch = x.e FOR SHARE OF o),
	m AS (SELECT u.h FROM unnest($4::bytea[]) AS u(h) WHERE NOT EXISTS (SELECT 1 FROM mqtt_sessions s WHERE s.h = u.h)),
	ok AS (SELECT (SELECT count(*) FROM f) = $3 AND NOT EXISTS (SELECT 1 FROM m) AS ok),
	d AS (DELETE FROM mqtt_packets p USING unnest($5::bytea[], $6::smallint[], $7::bigint[]) AS t(h, c, s)
		WHERE p.h = t.h AND p.class = t.c AND p.seq = t.s AND (SELECT ok FROM ok)),
	t AS (SELECT t.o, t.h, t.c, t.b FROM unnest($8::bytea[], $9::smallint[], $10::bytea[]) WITH ORDINALITY AS t(h, c, b, o)
		WHERE (SELECT ok FROM ok) ORDER BY t.o),
	v AS (SELECT o, h, c, b, nextval('mqtt_packet_seq') AS seq FROM t),
	i AS (INSERT INTO mqtt_packets (h, class, seq, blob) SELECT h, c, seq, b FROM v)
	SELECT (SELECT array_agg(h) FROM f), (SELECT array_agg(h) FROM m), (SELECT array_agg(seq ORDER BY o) FROM v)`
