package tool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// AsideRecord is one line of an aside file (ARCHIVE.md, "Aside files"): a record
// that repair removed from a store, with its bytes as they were stored.
type AsideRecord struct {
	// Kind is the record's kind: session, state, expiry, expiry-index,
	// subscription, packet or retained.
	Kind persistence.RecordKind `json:"kind"`
	// Session is the session's id when it is valid UTF-8; SessionB64 holds it
	// (base64) otherwise.
	Session    string `json:"session,omitempty"`
	SessionB64 []byte `json:"session_b64,omitempty"`
	// Class and Seq name a packet.
	Class string `json:"class,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
	// Name is a subscription's filter or a retained message's topic, when known.
	Name string `json:"name,omitempty"`
	// Key is the driver's key of the record (base64); empty for the readable
	// records of a broken session.
	Key []byte `json:"key,omitempty"`
	// Raw is the record's bytes (base64): a blob of persistence/driver/FORMAT.md.
	Raw []byte `json:"raw"`
	// Error says why the record does not decode; empty when Readable.
	Error string `json:"error,omitempty"`
	// Readable marks a record that decodes but was removed with its session,
	// whose own record did not.
	Readable bool `json:"readable,omitempty"`
}

// RepairReport is the result of check --repair.
type RepairReport struct {
	// Before is what check found before the repair.
	Before *CheckReport `json:"before"`
	// Aside is the file the removed records were written to; empty when none was
	// broken.
	Aside string `json:"aside,omitempty"`
	// Removed counts the broken records removed; Saved the lines written to Aside
	// (the broken records and the readable records of broken sessions).
	Removed int `json:"removed"`
	Saved   int `json:"saved"`
	// Fixes are the corrections of derived data (counters, indexes).
	Fixes []persistence.Fix `json:"fixes"`
	// After is what check found after the repair.
	After *CheckReport `json:"after"`
}

// Repair checks the store at storeURL, moves every record that does not decode
// into a new aside file in asideDir (the store's directory when empty, for bolt
// and badger; the working directory for other drivers), removes those records from
// the store, recomputes its derived data, and checks it again. A record is removed
// only after the aside file holding it has been synced to disk. A store with
// nothing broken and nothing to recompute is not written, and gets no aside file.
func Repair(ctx context.Context, storeURL, asideDir string, o Options) (*RepairReport, error) {
	rep := &RepairReport{Fixes: []persistence.Fix{}}
	var err error
	if rep.Before, err = Check(ctx, storeURL, o); err != nil {
		return nil, err
	}
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var broken, sessions []*persistence.BrokenRecord
	err = st.BrokenForEach(ctx, func(r *persistence.BrokenRecord) error {
		if r.Kind == persistence.RecordSession && r.ID != "" {
			sessions = append(sessions, r)
		} else {
			broken = append(broken, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(broken)+len(sessions) > 0 {
		if asideDir == "" {
			asideDir = defaultAsideDir(storeURL)
		}
		aside, err := newAsideFile(asideDir)
		if err != nil {
			return nil, err
		}
		defer aside.Close()
		rep.Aside = aside.Name()
		// Records other than sessions first, so that a broken session's readable
		// records are then read without errors.
		if err := moveAside(ctx, st, aside, rep, broken, nil); err != nil {
			return rep, err
		}
		if err := moveAside(ctx, st, aside, rep, sessions, readableOf); err != nil {
			return rep, err
		}
		if err := aside.Close(); err != nil {
			return rep, fmt.Errorf("aside file: %w", err)
		}
	}
	fixes, err := st.Rebuild(ctx)
	rep.Fixes = append(rep.Fixes, fixes...)
	if err != nil {
		return rep, err
	}
	if err := st.Close(); err != nil {
		return rep, err
	}
	rep.After, err = Check(ctx, storeURL, o)
	return rep, err
}

// moveAside writes recs (and, when more is not nil, the records more returns for
// each) to aside, syncs it, then removes recs from st.
func moveAside(ctx context.Context, st Store, aside *os.File, rep *RepairReport, recs []*persistence.BrokenRecord,
	more func(context.Context, Store, *persistence.BrokenRecord) ([]AsideRecord, error)) error {
	if len(recs) == 0 {
		return nil
	}
	enc := json.NewEncoder(aside)
	for _, r := range recs {
		lines := []AsideRecord{asideOf(r)}
		if more != nil {
			extra, err := more(ctx, st, r)
			if err != nil {
				return err
			}
			lines = append(lines, extra...)
		}
		for i := range lines {
			if err := enc.Encode(&lines[i]); err != nil {
				return fmt.Errorf("aside file: %w", err)
			}
			rep.Saved++
		}
	}
	if err := aside.Sync(); err != nil {
		return fmt.Errorf("aside file: %w", err)
	}
	for _, r := range recs {
		err := st.BrokenDelete(ctx, r)
		if errors.Is(err, persistence.ErrNotFound) {
			continue // removed with its session, or rewritten meanwhile: check says
		}
		if err != nil {
			return err
		}
		rep.Removed++
	}
	return nil
}

// asideOf is the aside line of a broken record.
func asideOf(r *persistence.BrokenRecord) AsideRecord {
	a := AsideRecord{Kind: r.Kind, Name: r.Name, Key: r.Key, Raw: r.Raw}
	a.setSession(r.ID)
	if r.Kind == persistence.RecordPacket {
		a.Class, a.Seq = r.Class.String(), r.Seq
	}
	if r.Err != nil {
		a.Error = r.Err.Error()
	}
	return a
}

func (a *AsideRecord) setSession(id string) {
	if utf8.ValidString(id) {
		a.Session = id
	} else {
		a.SessionB64 = []byte(id)
	}
}

// readableOf reads what still decodes of the session whose own record r is broken:
// its subscriptions, state, deadlines and packets, encoded as stored (FORMAT.md).
func readableOf(ctx context.Context, st Store, r *persistence.BrokenRecord) ([]AsideRecord, error) {
	id := r.ID
	sess := st.Sessions()
	line := func(kind persistence.RecordKind, raw []byte) AsideRecord {
		a := AsideRecord{Kind: kind, Raw: raw, Readable: true}
		a.setSession(id)
		return a
	}
	var out []AsideRecord
	skip := func(err error) bool { return errors.Is(err, persistence.ErrNotFound) }
	subs, err := sess.SubscriptionsLoad(ctx, id)
	if err != nil && !skip(err) {
		return nil, fmt.Errorf("session %q, whose record is broken: %w", id, err)
	}
	for _, s := range subs {
		a := line(persistence.RecordSubscription, driver.EncodeSubscription(nil, s))
		a.Name = s.Filter
		out = append(out, a)
	}
	if state, err := sess.StateGet(ctx, id); err == nil {
		out = append(out, line(persistence.RecordState, driver.EncodeState(nil, state)))
	} else if !skip(err) {
		return nil, fmt.Errorf("session %q, whose record is broken: %w", id, err)
	}
	if e, err := sess.ExpiryGet(ctx, id); err == nil {
		out = append(out, line(persistence.RecordExpiry, driver.EncodeExpiry(nil, e)))
	} else if !skip(err) {
		return nil, fmt.Errorf("session %q, whose record is broken: %w", id, err)
	}
	for _, c := range persistence.PacketClasses {
		err := sess.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
			a := line(persistence.RecordPacket, driver.EncodePacket(nil, p))
			a.Class, a.Seq = c.String(), p.Seq
			out = append(out, a)
			return false, nil
		})
		if err != nil && !skip(err) {
			return nil, fmt.Errorf("session %q, whose record is broken: %w", id, err)
		}
	}
	return out, nil
}

// defaultAsideDir is where aside files go without --aside: beside a bolt file or
// a Badger directory, else the working directory.
func defaultAsideDir(storeURL string) string {
	u, err := url.Parse(storeURL)
	if err != nil {
		return "."
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "bolt" && scheme != "badger" {
		return "."
	}
	p, err := kv.URLPath(scheme, u)
	if err != nil || p == "" {
		return "."
	}
	return filepath.Dir(filepath.Clean(p))
}

// newAsideFile creates a new aside file in dir, named by the current UTC time.
func newAsideFile(dir string) (*os.File, error) {
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	f, err := os.OpenFile(filepath.Join(dir, "mqttstore-aside-"+stamp+".jsonl"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("aside file: %w", err)
	}
	return f, nil
}
