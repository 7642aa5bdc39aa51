package tool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/archive"
	"github.com/mqttstore/mqttstore/persistence"
)

// markerID is the session that records the progress of an import or migrate inside
// the destination store. MQTT client identifiers cannot contain U+0000 (MQTT 3.1.1
// §1.5.3, 5.0 §1.5.4), so no client's session can have this id. It is created
// before the first record is written and deleted after verification succeeds.
const markerID = "\x00mqttstore/copy-in-progress"

// marker is the progress a copy has committed. It is written in the same atomic
// batch as the records it accounts for, so it is never ahead of or behind the data:
//
//   - a session of the source that exists in the destination was copied completely,
//     unless it is Cur;
//   - of Cur, the subscriptions, state and expiry were copied, and of its packets
//     every class before Class and the first N packets of Class.
type marker struct {
	// Source identifies what is being copied; a resume from anything else is refused.
	Source string `json:"source"`
	// Replace: the destination was not empty at the start (import --force); every
	// session is written again on resume (delete and create), none is skipped.
	Replace bool   `json:"replace"`
	HasCur  bool   `json:"has_cur"`
	Cur     []byte `json:"cur,omitempty"` // bytes: ids need not be UTF-8
	Class   uint8  `json:"class"`
	N       uint64 `json:"n"`
}

// Batch bounds: a batch is committed when it reaches either.
const (
	batchOps   = 1000
	batchBytes = 4 << 20
	// retainedWorkers is how many Retained.Put calls run at once (drivers with
	// group commit share one commit between them).
	retainedWorkers = 16
)

// prepareDest readies dst for a copy from source: it resumes a copy of the same
// source whose marker it finds, refuses a non-empty store unless force, and writes a
// fresh marker otherwise. It returns the marker and whether this is a resume.
func prepareDest(ctx context.Context, dst Store, source string, force bool) (marker, bool, error) {
	sess := dst.Sessions()
	ok, err := sess.Exists(ctx, markerID)
	if err != nil {
		return marker{}, false, err
	}
	if ok {
		st, err := sess.StateGet(ctx, markerID)
		if err != nil && !errors.Is(err, persistence.ErrNotFound) {
			return marker{}, false, err
		}
		var m marker
		if st != nil {
			if err := json.Unmarshal(st.UserData, &m); err != nil {
				return marker{}, false, fmt.Errorf("%w: unreadable progress marker: %v", ErrResumeMismatch, err)
			}
		}
		if m.Source == source {
			return m, true, nil
		}
		if !force {
			return marker{}, false, fmt.Errorf("%w: the destination holds an unfinished copy from %q, not from %q; finish that copy, or use a fresh destination, or --force", ErrResumeMismatch, m.Source, source)
		}
		m = marker{Source: source, Replace: true}
		return m, false, writeMarker(ctx, sess, m)
	}
	empty, err := isEmpty(ctx, dst)
	if err != nil {
		return marker{}, false, err
	}
	if !empty && !force {
		n, _ := sess.Count(ctx)
		r, _ := dst.Retained().Count(ctx)
		return marker{}, false, fmt.Errorf("%w: it holds %d sessions and %d retained messages", ErrNotEmpty, n, r)
	}
	m := marker{Source: source, Replace: !empty}
	if err := sess.Create(ctx, markerID, persistence.SessionBase{}); err != nil {
		return marker{}, false, err
	}
	return m, false, writeMarker(ctx, sess, m)
}

func markerState(m marker) *persistence.SessionState {
	js, _ := json.Marshal(m) // cannot fail: plain fields
	return &persistence.SessionState{UserData: js}
}

func writeMarker(ctx context.Context, sess sessionsAPI, m marker) error {
	return sess.StateStore(ctx, markerID, markerState(m))
}

// finishDest removes the marker: the copy is complete and verified.
func finishDest(ctx context.Context, dst Store) error {
	return dst.Sessions().Delete(ctx, markerID)
}

// sink writes records into a store in atomic batches that carry the marker.
type sink struct {
	ctx    context.Context
	sess   sessionsAPI
	ret    retainedAPI
	m      marker
	resume bool // the marker existed at the start: sessions present are complete

	b     persistence.Batch
	bytes int

	active  bool // a session's records are being written
	cur     string
	class   persistence.PacketClass
	n       uint64 // packets of class seen so far for cur (skipped ones included)
	skip    bool   // the rest of the current session is already in the store
	partial bool   // cur is the marker's partially copied session
	resumeC persistence.PacketClass
	resumeN uint64

	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	retErr error

	written, skipped uint64
	commits          int
}

func newSink(ctx context.Context, dst Store, m marker, resume bool) *sink {
	return &sink{ctx: ctx, sess: dst.Sessions(), ret: dst.Retained(), m: m, resume: resume, sem: make(chan struct{}, retainedWorkers)}
}

// record takes one record. For a KindSession record it may return errSkipSession
// (the session is already in the store); records of a skipped session are ignored.
func (s *sink) record(r *archive.Record) error {
	switch r.Kind {
	case archive.KindSession:
		return s.session(r)
	case archive.KindSubscription, archive.KindState, archive.KindExpiry:
		if !s.active || r.ID != s.cur {
			return fmt.Errorf("%w: %s record of session %q outside its session", archive.ErrCorrupt, r.Kind, r.ID)
		}
		if s.skip || s.partial {
			s.skipped++
			return nil
		}
		switch r.Kind {
		case archive.KindSubscription:
			s.b.SubscriptionStore(r.ID, r.Sub)
		case archive.KindState:
			s.b.StateStore(r.ID, r.State)
		default:
			s.b.ExpiryStore(r.ID, r.Expiry)
		}
		s.written++
		return nil
	case archive.KindPacket:
		if !s.active || r.ID != s.cur {
			return fmt.Errorf("%w: packet of session %q outside its session", archive.ErrCorrupt, r.ID)
		}
		if s.skip {
			s.skipped++
			return nil
		}
		if r.Class != s.class {
			s.class, s.n = r.Class, 0
		}
		s.n++
		if s.partial && (r.Class < s.resumeC || (r.Class == s.resumeC && s.n <= s.resumeN)) {
			s.skipped++
			return nil
		}
		s.b.PacketAppend(r.ID, r.Class, r.Packet)
		s.bytes += len(r.Packet.Data)
		s.written++
		if s.full() {
			return s.flush()
		}
		return nil
	case archive.KindRetained:
		if s.active {
			s.active = false
			if err := s.flush(); err != nil {
				return err
			}
		}
		return s.putRetained(r)
	}
	return fmt.Errorf("%w: record kind %#x", archive.ErrCorrupt, byte(r.Kind))
}

func (s *sink) session(r *archive.Record) error {
	if r.ID == markerID {
		return fmt.Errorf("%w: a session with the reserved id %q", archive.ErrCorrupt, markerID)
	}
	if s.active {
		s.active = false
		if s.full() {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	s.cur, s.class, s.n, s.skip, s.partial = r.ID, 0, 0, false, false
	if !s.m.Replace && s.m.HasCur && string(s.m.Cur) == r.ID {
		s.active, s.partial = true, true
		s.resumeC, s.resumeN = persistence.PacketClass(s.m.Class), s.m.N
		s.skipped++
		return nil
	}
	if s.resume && !s.m.Replace {
		ok, err := s.sess.Exists(s.ctx, r.ID)
		if err != nil {
			return err
		}
		if ok {
			s.active, s.skip = true, true
			s.skipped++
			return errSkipSession
		}
	}
	if s.m.Replace {
		s.b.Delete(r.ID)
	}
	s.b.Create(r.ID, r.Base)
	s.active = true
	s.written++
	return nil
}

func (s *sink) full() bool { return s.b.Len() >= batchOps || s.bytes >= batchBytes }

// flush commits the pending batch together with the marker describing it.
func (s *sink) flush() error {
	m := s.m
	m.HasCur, m.Cur, m.Class, m.N = false, nil, 0, 0
	if s.active && !s.skip {
		m.HasCur, m.Cur, m.Class, m.N = true, []byte(s.cur), uint8(s.class), s.n
		if s.partial && (s.class < s.resumeC || (s.class == s.resumeC && s.n < s.resumeN)) {
			m.Class, m.N = uint8(s.resumeC), s.resumeN // never move the marker back
		}
	}
	if s.b.Len() == 0 && m.HasCur == s.m.HasCur && string(m.Cur) == string(s.m.Cur) && m.Class == s.m.Class && m.N == s.m.N {
		return nil
	}
	s.b.StateStore(markerID, markerState(m))
	_, err := s.sess.Apply(s.ctx, &s.b)
	s.b.Reset()
	s.bytes = 0
	if err != nil {
		return fmt.Errorf("writing to the destination: %w", err)
	}
	s.m = m
	s.commits++
	if testHookCommit != nil {
		testHookCommit(s.commits)
	}
	return nil
}

// testHookCommit, when set (by tests only), is called after each committed batch
// with the number of batches committed so far by this process.
var testHookCommit func(n int)

func (s *sink) putRetained(r *archive.Record) error {
	if err := s.retainedErr(); err != nil {
		return err
	}
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	s.wg.Add(1)
	s.written++
	go func() {
		defer func() { <-s.sem; s.wg.Done() }()
		if err := s.ret.Put(s.ctx, r.Topic, r.Packet); err != nil {
			s.mu.Lock()
			if s.retErr == nil {
				s.retErr = fmt.Errorf("writing retained %q: %w", r.Topic, err)
			}
			s.mu.Unlock()
		}
	}()
	return nil
}

func (s *sink) retainedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retErr
}

// finish commits what is pending and waits for the retained writes.
func (s *sink) finish() error {
	s.active = false
	err := s.flush()
	s.wg.Wait()
	return errors.Join(err, s.retainedErr())
}

// abort waits for retained writes in flight, so that none runs after the caller
// closes the store.
func (s *sink) abort() { s.wg.Wait() }
