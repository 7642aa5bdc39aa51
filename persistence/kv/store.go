package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/internal/groupcommit"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Config is what [Open] needs besides the engine and the driver's environment.
type Config struct {
	// Driver is the driver name: recorded in a new store's SystemInfo and used as
	// the prefix of error messages.
	Driver string
	// MaxGroup bounds the operations committed together; 0 means 1024.
	MaxGroup int
	// MaxKeySize is the engine's largest key; 0 means no limit. A write whose key
	// (which holds a session id, filter or topic) is longer fails with
	// driver.ErrInvalidArgument instead of an engine error.
	MaxKeySize int
}

// gcChunk is the number of keys one garbage-collection transaction deletes.
const gcChunk = 1024

// Store implements [driver.Conn] over an [Engine].
type Store struct {
	eng  Engine
	cfg  Config
	env  driver.Env
	name string
	info driver.SystemInfo

	committer *groupcommit.Committer[writeFn]

	// seq is the last sequence number handed out by a committed transaction. Only the
	// committer's goroutine advances it, after the commit.
	seq atomic.Uint64
	// reserved is the sequence number recorded in the store (keySeq): numbers up to it
	// may have been handed out, so a reopen continues after it. It is raised by
	// seqBlock at a time, so that most commits do not write it. Only the committer's
	// goroutine uses it (and init, before the committer starts).
	reserved uint64
	// commits counts committed write transactions: an iteration whose page was read
	// before the count changed reads it again, so callbacks see their own writes.
	commits atomic.Uint64
	// gcPending is set when a commit left keys to collect.
	gcPending atomic.Bool

	// mu is held shared by read transactions and exclusively by Close, so that no
	// read transaction is open when the engine closes; closed, read under it, makes a
	// read that raced with Close fail instead of reaching a closed engine.
	mu        sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	gcMu sync.Mutex // serializes garbage collection

	// heads maps a queue id to a sequence number below which that queue holds no
	// packet any more (see queueHead). Guarded by headsMu.
	headsMu sync.Mutex
	heads   map[uint64]uint64
}

// maxHeads bounds the heads map; when it is full it is emptied, which only makes
// the next iteration of each queue start from the front again.
const maxHeads = 1 << 16

// queueHead returns where an iteration of queue qid may start: a sequence number
// below which the queue has no packet, or 0 when none is known.
//
// Sequence numbers only grow, and a write never reuses one that a committed write
// handed out, so once an iteration has seen a queue's first packet at S, no packet
// below S can appear in that queue again. Starting there skips the deleted keys in
// front of a draining queue, which an LSM engine such as Badger keeps as tombstones
// until compaction and would otherwise step over again on every read of the queue:
// quadratic work for a backlog drained page by page.
func (s *Store) queueHead(qid uint64) uint64 {
	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	return s.heads[qid]
}

// setQueueHead records that queue qid holds no packet below seq.
func (s *Store) setQueueHead(qid, seq uint64) {
	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	if s.heads == nil || (len(s.heads) >= maxHeads && s.heads[qid] == 0) {
		s.heads = make(map[uint64]uint64)
	}
	if seq > s.heads[qid] {
		s.heads[qid] = seq
	}
}

// forgetQueueHead drops the hint of a queue that was cleared or deleted.
func (s *Store) forgetQueueHead(qid uint64) {
	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	delete(s.heads, qid)
}

// writeFn is one caller's operation, run inside a shared write transaction. It must
// write nothing when it returns an error, because the group transaction is rolled
// back and run again without it, and it must be safe to run more than once.
type writeFn func(w *writer) error

// errAbort rolls back a group transaction in which one operation failed.
var errAbort = errors.New("kv: operation failed, group rolled back")

// Open opens the layer over eng: it records the schema version and system info in a
// new store, refuses one written by a newer schema with driver.ErrSchemaVersion,
// finishes any garbage collection a crash interrupted and starts the group
// committer. env is the one the driver's Connect received: the clock dates a new
// store, the logger gets diagnostics and OnCommit hears of every group commit. On
// error eng is closed.
func Open(ctx context.Context, eng Engine, env driver.Env, cfg Config) (*Store, error) {
	if env.Clock == nil {
		env.Clock = driver.SystemClock{}
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{eng: eng, cfg: cfg, env: env, name: cfg.Driver}
	if err := s.init(); err != nil {
		_ = eng.Close()
		return nil, err
	}
	s.committer = groupcommit.New(s.commit, cfg.MaxGroup)
	return s, nil
}

func (s *Store) init() error {
	var (
		raw []byte
		seq uint64
	)
	err := s.eng.View(func(tx Tx) error {
		v, err := tx.Get(keyInfo)
		if err != nil || v == nil {
			return err
		}
		raw = append([]byte(nil), v...)
		q, err := tx.Get(keySeq)
		if err != nil {
			return err
		}
		seq, err = readU64(q, "sequence")
		return err
	})
	if err != nil {
		return s.wrap("read system info", err)
	}
	if raw == nil {
		s.info = driver.SystemInfo{
			SchemaVersion: driver.SchemaVersion,
			CreatedAt:     s.env.Clock.Now(),
			SDKVersion:    driver.SDKVersion,
			Driver:        s.name,
		}
		blob := driver.EncodeSystemInfo(nil, s.info)
		if err := s.eng.Update(func(tx Tx) error { return tx.Put(keyInfo, blob) }); err != nil {
			return s.wrap("record system info", err)
		}
	} else {
		info, err := driver.DecodeSystemInfo(raw)
		if err != nil {
			return fmt.Errorf("%s: system info: %w", s.name, err)
		}
		if err := driver.CheckSchema(info.SchemaVersion); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		s.info = info
	}
	s.seq.Store(seq)
	s.reserved = seq
	if err := s.abandonPending(); err != nil {
		return err
	}
	return s.collectGarbage()
}

// abandonPending turns the retained tables of Store calls a crash interrupted into
// garbage.
func (s *Store) abandonPending() error {
	var gens [][]byte
	err := s.eng.View(func(tx Tx) error {
		return tx.Iterate(keyPending, keyPending, func(k, _ []byte) (bool, error) {
			gens = append(gens, append([]byte(nil), k...))
			return true, nil
		})
	})
	if err != nil {
		return s.wrap("read pending retained tables", err)
	}
	if len(gens) == 0 {
		return nil
	}
	err = s.eng.Update(func(tx Tx) error {
		for _, k := range gens {
			if len(k) != len(keyPending)+8 {
				return fmt.Errorf("%w: pending table marker of %d bytes", driver.ErrBrokenEntry, len(k))
			}
			gen := k[len(keyPending):]
			if err := tx.Put(garbageKey(append([]byte{tagRetained}, gen...)), []byte{}); err != nil {
				return err
			}
			if err := tx.Put(garbageKey(append([]byte{tagLongTopic}, gen...)), []byte{}); err != nil {
				return err
			}
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap("abandon pending retained tables", err)
}

// Info returns the store's metadata, as recorded when it was created.
func (s *Store) Info(context.Context) (driver.SystemInfo, error) { return s.info, nil }

// Close commits the writes already queued, stops the committer, waits for read
// transactions and closes the engine. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.committer.Close()
		s.gcMu.Lock()
		s.mu.Lock()
		if err := s.eng.Close(); err != nil {
			s.closeErr = fmt.Errorf("%s: close: %w", s.name, err)
		}
		s.mu.Unlock()
		s.gcMu.Unlock()
	})
	return s.closeErr
}

// Engine returns the engine the store runs on. A driver's crash test closes it
// directly, abandoning the store without its orderly Close.
func (s *Store) Engine() Engine { return s.eng }

func (s *Store) errClosed() error {
	return fmt.Errorf("%s: %w", s.name, driver.ErrClosed)
}

// wrap adds context to an engine error, mapping a closed engine to ErrClosed.
func (s *Store) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrEngineClosed) {
		return fmt.Errorf("%s: %s: %w: %w", s.name, what, driver.ErrClosed, err)
	}
	return fmt.Errorf("%s: %s: %w", s.name, what, err)
}

// view runs fn in a read transaction. A read that raced with Close fails with
// ErrClosed instead of reaching the closed engine.
func (s *Store) view(what string, fn func(tx Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return s.errClosed()
	}
	var fnErr error
	err := s.eng.View(func(tx Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if err != nil && err == fnErr {
		return err // the layer's own error, already in context
	}
	return s.wrap(what, err)
}

// write runs fn in a group-committed write transaction and returns its own error.
func (s *Store) write(ctx context.Context, fn writeFn) error {
	err := s.committer.Do(ctx, fn)
	if errors.Is(err, groupcommit.ErrClosed) {
		return s.errClosed()
	}
	if s.gcPending.Load() {
		if gcErr := s.collectGarbage(); gcErr != nil {
			// The operation itself committed; what is left is invisible and is
			// collected by the next write or the next open.
			s.env.Logger.Warn("garbage collection failed", "driver", s.name, "err", gcErr)
		}
	}
	return err
}

// commit is the group committer's CommitFunc. A request whose context ended while
// it waited in the queue is not run (groupcommit's contract: its caller was told).
func (s *Store) commit(group []*groupcommit.Request[writeFn]) {
	live := make([]*groupcommit.Request[writeFn], 0, len(group))
	for _, r := range group {
		if err := r.Ctx.Err(); err != nil {
			r.Err = err
			continue
		}
		live = append(live, r)
	}
	s.commitGroup(live)
}

// commitGroup commits reqs in one transaction. An operation that fails is taken out
// and the rest run again, so that every operation stays atomic; when the engine
// refuses a transaction as too big, the operations before the one that overflowed
// are committed first and the rest follow in a new transaction. Every transaction
// that commits, or fails as a whole, is reported to env.OnCommit.
func (s *Store) commitGroup(reqs []*groupcommit.Request[writeFn]) {
	start := time.Now()
	for len(reqs) > 0 {
		failed, opErr, err := s.attempt(reqs)
		if err != nil {
			err = s.wrap("commit", err)
			for _, r := range reqs {
				r.Err = err
			}
			s.committed(len(reqs), start, err)
			return
		}
		if failed < 0 {
			for _, r := range reqs {
				r.Err = nil
			}
			s.committed(len(reqs), start, nil)
			return
		}
		if errors.Is(opErr, ErrTxnTooBig) && failed > 0 {
			s.commitGroup(reqs[:failed])
			reqs = reqs[failed:]
			start = time.Now()
			continue
		}
		if errors.Is(opErr, ErrEngineClosed) {
			opErr = s.wrap("write", opErr)
		}
		reqs[failed].Err = opErr
		reqs = append(reqs[:failed:failed], reqs[failed+1:]...)
	}
}

// committed tells env.OnCommit about a commit of calls operations begun at start.
func (s *Store) committed(calls int, start time.Time, err error) {
	if s.env.OnCommit != nil {
		s.env.OnCommit(driver.CommitInfo{Calls: calls, Duration: time.Since(start), Err: err})
	}
}

// attempt runs reqs in one write transaction. It returns the index of the first
// operation that failed (the transaction was then rolled back) with its error, or -1
// and the engine's error.
func (s *Store) attempt(reqs []*groupcommit.Request[writeFn]) (failed int, opErr, err error) {
	failed = -1
	w := &writer{s: s}
	err = s.eng.Update(func(tx Tx) error {
		if s.cfg.MaxKeySize > 0 {
			tx = limitTx{Tx: tx, s: s}
		}
		*w = writer{s: s, tx: tx, seq: s.seq.Load(), reserved: s.reserved}
		for i, r := range reqs {
			w.index = i
			if err := r.Value(w); err != nil {
				failed, opErr = i, err
				return errAbort
			}
		}
		return w.finish()
	})
	if failed >= 0 {
		return failed, opErr, nil
	}
	if err != nil {
		return -1, nil, err
	}
	s.seq.Store(w.seq)
	s.reserved = w.reserved
	s.commits.Add(1)
	if w.garbage {
		s.gcPending.Store(true)
	}
	return -1, nil, nil
}

// limitTx refuses keys the engine cannot hold, as an invalid argument.
type limitTx struct {
	Tx
	s *Store
}

func (t limitTx) Put(k, v []byte) error {
	if len(k) > t.s.cfg.MaxKeySize {
		return fmt.Errorf("%s: %w: a key of %d bytes exceeds the %d bytes this engine allows (session id, topic filter or topic too long)",
			t.s.name, driver.ErrInvalidArgument, len(k), t.s.cfg.MaxKeySize)
	}
	return t.Tx.Put(k, v)
}

// writer is the state of one group transaction.
type writer struct {
	s        *Store
	tx       Tx
	seq      uint64 // last sequence number handed out in this transaction
	reserved uint64 // what keySeq holds, or will once this transaction commits
	dSess    int64  // change of the session count
	dRet     int64  // change of the retained count
	garbage  bool   // a garbage marker was written
	index    int    // position of the running operation in the transaction
}

// unchangedSince reports whether the running operation sees exactly the state a read
// transaction saw when the commit count was commits: nothing committed since, and no
// operation ran before it in this transaction.
func (w *writer) unchangedSince(commits uint64) bool {
	return w.index == 0 && w.s.commits.Load() == commits
}

// nextSeq hands out a store-wide sequence number: packets, queue ids and expiry
// stamps all draw from it, so none is ever reused.
func (w *writer) nextSeq() uint64 {
	w.seq++
	return w.seq
}

// seqBlock is how far ahead of the numbers handed out keySeq is moved.
const seqBlock = 4096

// finish writes the counters the transaction changed. keySeq is written only when
// the numbers handed out pass it: it then jumps seqBlock ahead, in the same
// transaction, so no number it covers is ever handed out twice, even after a crash.
func (w *writer) finish() error {
	if w.seq > w.reserved {
		w.reserved = w.seq + seqBlock
		if err := w.tx.Put(keySeq, u64(w.reserved)); err != nil {
			return err
		}
	}
	if err := w.addCount(keySessions, w.dSess, "session count"); err != nil {
		return err
	}
	return w.addCount(keyRetained, w.dRet, "retained count")
}

func (w *writer) addCount(key []byte, d int64, what string) error {
	if d == 0 {
		return nil
	}
	v, err := w.tx.Get(key)
	if err != nil {
		return err
	}
	n, err := readU64(v, what)
	if err != nil {
		return err
	}
	return w.tx.Put(key, u64(uint64(int64(n)+d)))
}

// markGarbage records that every key under prefix is to be deleted.
func (w *writer) markGarbage(prefix []byte) error {
	w.garbage = true
	return w.tx.Put(garbageKey(prefix), []byte{})
}

// collectGarbage deletes the keys under every garbage marker, gcChunk keys per
// transaction, then the marker. Markers are written in the transaction that made
// their keys unreachable, so collection can stop anywhere and resume later.
func (s *Store) collectGarbage() error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.gcPending.Store(false)
	for {
		if s.closed.Load() {
			return nil
		}
		var marker []byte
		err := s.eng.View(func(tx Tx) error {
			return tx.Iterate([]byte{tagGarbage}, []byte{tagGarbage}, func(k, _ []byte) (bool, error) {
				marker = append([]byte(nil), k...)
				return false, nil
			})
		})
		if err != nil {
			return s.wrap("garbage collection", err)
		}
		if marker == nil {
			return nil
		}
		prefix := marker[1:]
		for {
			var keys [][]byte
			err := s.eng.View(func(tx Tx) error {
				return tx.Iterate(prefix, prefix, func(k, _ []byte) (bool, error) {
					keys = append(keys, append([]byte(nil), k...))
					return len(keys) < gcChunk, nil
				})
			})
			if err != nil {
				return s.wrap("garbage collection", err)
			}
			last := len(keys) < gcChunk
			err = s.eng.Update(func(tx Tx) error {
				for _, k := range keys {
					if err := tx.Delete(k); err != nil {
						return err
					}
				}
				if last {
					return tx.Delete(marker)
				}
				return nil
			})
			if err != nil {
				return s.wrap("garbage collection", err)
			}
			if last {
				break
			}
		}
	}
}

var _ driver.Conn = (*Store)(nil)
