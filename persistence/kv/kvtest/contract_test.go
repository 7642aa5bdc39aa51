package kvtest

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mqttstore/mqttstore/persistence/kv"
)

// memEngine is a small, correct kv.Engine (copy-on-write maps) for checking that the
// contract test catches adapter bugs, planted by the flags.
type memEngine struct {
	mu     sync.Mutex
	data   map[string]string
	closed bool

	noPrefixBound, startIgnored, emptyIsNil, closedUnmapped, viewLive, updateBlind bool
}

type memTx struct {
	e         *memEngine
	data      map[string]string // what the transaction sees
	committed map[string]string // the snapshot it began from
	write     bool
}

func (e *memEngine) begin() (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		if e.closedUnmapped {
			return nil, errors.New("mem: closed")
		}
		return nil, fmt.Errorf("mem: %w", kv.ErrEngineClosed)
	}
	return e.data, nil
}

func (e *memEngine) View(fn func(kv.Tx) error) error {
	snap, err := e.begin()
	if err != nil {
		return err
	}
	tx := &memTx{e: e, data: snap, committed: snap}
	if e.viewLive {
		tx.data = nil // read e.data at every call
	}
	return fn(tx)
}

func (e *memEngine) Update(fn func(kv.Tx) error) error {
	snap, err := e.begin()
	if err != nil {
		return err
	}
	tx := &memTx{e: e, data: maps.Clone(snap), committed: snap, write: true}
	if err := fn(tx); err != nil {
		return err
	}
	e.mu.Lock()
	e.data = tx.data
	e.mu.Unlock()
	return nil
}

func (e *memEngine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return nil
}

func (t *memTx) view() map[string]string {
	if t.data == nil {
		t.e.mu.Lock()
		defer t.e.mu.Unlock()
		return t.e.data
	}
	return t.data
}

func (t *memTx) Get(k []byte) ([]byte, error) {
	v, ok := t.view()[string(k)]
	if !ok || (v == "" && t.e.emptyIsNil) {
		return nil, nil
	}
	return []byte(v), nil
}

func (t *memTx) Put(k, v []byte) error { t.data[string(k)] = string(v); return nil }
func (t *memTx) Delete(k []byte) error { delete(t.data, string(k)); return nil }

func (t *memTx) Iterate(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	m := t.view()
	if t.write && t.e.updateBlind {
		m = t.committed
	}
	if t.e.startIgnored {
		start = prefix
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k < string(start) {
			continue
		}
		// The planted bug is the classic one: a Seek to start without the
		// prefix check.
		if !t.e.noPrefixBound && !strings.HasPrefix(k, string(prefix)) {
			if k > string(prefix) {
				return nil
			}
			continue
		}
		more, err := fn([]byte(k), []byte(m[k]))
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// recorder takes the place of testing.T for a case expected to fail.
type recorder struct{ msg string }

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// caseFailure runs the named case on e and returns its failure ("" if none).
func caseFailure(name string, e kv.Engine) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range contractCases {
			if c.name == name {
				c.run(&contract{r}, e)
				return
			}
		}
		r.msg = "no such case"
	}()
	<-done
	return r.msg
}

// TestEngineContractCatches runs the contract on a correct engine and on engines
// with one planted adapter bug each, which must fail the named case with the
// named message.
func TestEngineContractCatches(t *testing.T) {
	newMem := func() *memEngine { return &memEngine{data: map[string]string{}} }
	for _, c := range contractCases {
		if msg := caseFailure(c.name, newMem()); msg != "" {
			t.Errorf("the correct engine fails %s: %s", c.name, msg)
		}
	}
	for _, m := range []struct {
		bug, caseName, says string
		plant               func(e *memEngine)
	}{
		{"Iterate runs past its prefix", "IterateBounds", "Iterate returned a key outside its prefix", func(e *memEngine) { e.noPrefixBound = true }},
		{"Iterate starts at the prefix", "IterateBounds", "Iterate returned a key before its start", func(e *memEngine) { e.startIgnored = true }},
		{"an empty value reads as absent", "EmptyValue", "nil means absent", func(e *memEngine) { e.emptyIsNil = true }},
		{"the closed error is not mapped", "Closed", "kv.ErrEngineClosed", func(e *memEngine) { e.closedUnmapped = true }},
		{"View reads live data", "SnapshotIsolation", "a View saw a write committed after it began", func(e *memEngine) { e.viewLive = true }},
		{"Iterate in Update misses the transaction's writes", "OwnWrites", "does not see the transaction's own writes", func(e *memEngine) { e.updateBlind = true }},
	} {
		e := newMem()
		m.plant(e)
		if msg := caseFailure(m.caseName, e); !strings.Contains(msg, m.says) {
			t.Errorf("planted bug %q: case %s reported %q; want a failure saying %q", m.bug, m.caseName, msg, m.says)
		}
	}
}
