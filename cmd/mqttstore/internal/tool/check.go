package tool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Problem is one fault check found.
type Problem struct {
	// Kind is "broken" (a record that does not decode), "count" (a counter that
	// disagrees with the records) or "index" (an index entry with no record, or a
	// record missing from its index).
	Kind string `json:"kind"`
	// Where names the session, class or retained table concerned.
	Where string `json:"where"`
	// Detail is the driver's message (it names the key or row where it can).
	Detail string `json:"detail"`
}

// CheckReport is the result of check.
type CheckReport struct {
	Store    StoreInfo `json:"store"`
	Sessions uint64    `json:"sessions_read"`
	Packets  uint64    `json:"packets_read"`
	Retained uint64    `json:"retained_read"`
	Problems []Problem `json:"problems"`
}

// Clean reports whether check found nothing wrong.
func (r *CheckReport) Clean() bool { return len(r.Problems) == 0 }

func (r *CheckReport) add(kind, where string, err error) {
	// Iterations join one error per broken entry: report each on its own.
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		for _, e := range j.Unwrap() {
			r.add(kind, where, e)
		}
		return
	}
	r.Problems = append(r.Problems, Problem{Kind: kind, Where: where, Detail: err.Error()})
}

// Check reads and decodes every record of the store at storeURL through the public
// API and compares every counter the API exposes (sessions, packets per queue,
// retained) and the expiry index with the records read. It returns an error only
// when it could not run; what it finds is in the report.
func Check(ctx context.Context, storeURL string, o Options) (*CheckReport, error) {
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rep := &CheckReport{}
	if rep.Store, err = info(ctx, st); err != nil {
		rep.add("broken", "store metadata", err)
	}
	total, err := o.total(ctx, st)
	if err != nil {
		// Broken sessions make the count fail; carry on without a total.
		total = 0
	}
	prog := o.progress("check", total)
	defer prog.Done()
	sess := st.Sessions()

	withExpiry := map[string]persistence.SessionExpiry{}
	var listed uint64
	err = sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		listed++
		if ls.ID == markerID {
			return nil
		}
		rep.Sessions++
		prog.Add(1+int64(len(ls.Subscriptions)), 0)
		where := fmt.Sprintf("session %q", ls.ID)
		if ls.Expiry != nil && !ls.Expiry.IsZero() {
			withExpiry[ls.ID] = *ls.Expiry
		}
		subs, err := sess.SubscriptionsLoad(ctx, ls.ID)
		switch {
		case err != nil:
			rep.add("broken", where+" subscriptions", err)
		case len(subs) != len(ls.Subscriptions):
			rep.add("count", where+" subscriptions", fmt.Errorf("SubscriptionsLoad returned %d, LoadForEach %d", len(subs), len(ls.Subscriptions)))
		}
		if _, err := sess.StateGet(ctx, ls.ID); err != nil && !errors.Is(err, persistence.ErrNotFound) {
			rep.add("broken", where+" state", err)
		}
		for _, c := range persistence.PacketClasses {
			cw := fmt.Sprintf("%s class %s", where, c)
			var n uint64
			err := sess.PacketsForEach(ctx, ls.ID, c, func(p *persistence.PersistedPacket) (bool, error) {
				n++
				prog.Add(1, int64(len(p.Data)))
				if err := driver.ValidatePacket(p); err != nil {
					rep.add("broken", fmt.Sprintf("%s seq %d", cw, p.Seq), err)
				}
				return false, nil
			})
			broken := uint64(0)
			if err != nil {
				before := len(rep.Problems)
				rep.add("broken", cw, err)
				broken = uint64(len(rep.Problems) - before)
			}
			rep.Packets += n
			cnt, err := sess.PacketCount(ctx, ls.ID, c)
			if err != nil {
				rep.add("broken", cw+" count", err)
			} else if cnt < n || cnt > n+broken { // broken packets are still counted
				rep.add("count", cw, fmt.Errorf("PacketCount says %d, %d packets read", cnt, n))
			}
		}
		return nil
	})
	brokenSessions := uint64(0)
	if err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		before := len(rep.Problems)
		rep.add("broken", "sessions", err)
		brokenSessions = uint64(len(rep.Problems) - before)
	}
	// Sessions skipped as broken are still counted by the store.
	if n, err := sess.Count(ctx); err != nil {
		rep.add("broken", "session count", err)
	} else if n < listed || n > listed+brokenSessions {
		rep.add("count", "sessions", fmt.Errorf("the store counts %d sessions, %d were read", n, listed))
	}

	// The expiry index: every entry must name a session with those deadlines, and
	// every session with deadlines must be in it.
	far := time.Now().AddDate(1000, 0, 0)
	seen := map[string]bool{}
	err = sess.ExpiredForEach(ctx, far, func(id string, e persistence.SessionExpiry) error {
		seen[id] = true
		want, ok := withExpiry[id]
		switch {
		case !ok:
			rep.add("index", fmt.Sprintf("expiry index entry %q", id), errors.New("no readable session with deadlines has this id (an entry that points nowhere, or its session is broken)"))
		case !want.ExpireAt.Equal(e.ExpireAt) || !want.WillAt.Equal(e.WillAt):
			rep.add("index", fmt.Sprintf("expiry index entry %q", id), fmt.Errorf("index says %v, the session %v", e, want))
		}
		return nil
	})
	if err != nil {
		rep.add("broken", "expiry index", err)
	}
	for id, e := range withExpiry {
		if !seen[id] && e.Next().Before(far) {
			rep.add("index", fmt.Sprintf("session %q", id), errors.New("has deadlines but no expiry index entry"))
		}
	}

	ret := st.Retained()
	err = ret.Load(ctx, func(m *persistence.RetainedMessage) error {
		rep.Retained++
		prog.Add(1, int64(len(m.Packet.Data)))
		if err := persistence.ValidTopic(m.Topic); err != nil {
			rep.add("broken", fmt.Sprintf("retained %q", m.Topic), err)
		}
		return nil
	})
	brokenRet := uint64(0)
	if err != nil {
		before := len(rep.Problems)
		rep.add("broken", "retained", err)
		brokenRet = uint64(len(rep.Problems) - before)
	}
	if n, err := ret.Count(ctx); err != nil {
		rep.add("broken", "retained count", err)
	} else if n < rep.Retained || n > rep.Retained+brokenRet {
		rep.add("count", "retained", fmt.Errorf("the store counts %d retained messages, %d were read", n, rep.Retained))
	}
	checkBroken(ctx, st, rep)
	if ok, err := sess.Exists(ctx, markerID); err == nil && ok {
		rep.add("index", "copy marker", errors.New("an import or migrate into this store did not finish; run it again to complete it"))
	}
	return rep, nil
}

// checkBroken adds the broken records the store's own scan finds
// (persistence.Store.BrokenForEach) that the reads above did not report: those of a
// session that was skipped as broken, and those after the first broken record of
// a driver whose iterations stop there. A driver without that scan adds nothing.
func checkBroken(ctx context.Context, st Store, rep *CheckReport) {
	seen := map[string]bool{}
	for _, p := range rep.Problems {
		seen[p.Detail] = true
	}
	err := st.BrokenForEach(ctx, func(r *persistence.BrokenRecord) error {
		if !seen[r.Err.Error()] {
			rep.add("broken", brokenWhere(r), r.Err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, persistence.ErrNotSupported) {
		rep.add("broken", "records", err)
	}
}

// brokenWhere names the place of a broken record.
func brokenWhere(r *persistence.BrokenRecord) string {
	switch r.Kind {
	case persistence.RecordPacket:
		return fmt.Sprintf("session %q class %s seq %d", r.ID, r.Class, r.Seq)
	case persistence.RecordRetained:
		return fmt.Sprintf("retained %q", r.Name)
	case persistence.RecordSubscription:
		if r.Name == "" {
			return fmt.Sprintf("session %q subscription", r.ID)
		}
		return fmt.Sprintf("session %q subscription %q", r.ID, r.Name)
	}
	return fmt.Sprintf("session %q %s", r.ID, r.Kind)
}
