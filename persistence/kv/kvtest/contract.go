package kvtest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/kv"
)

// EngineOptions declares what an engine under [EngineContract] may do.
type EngineOptions struct {
	// TxnLimit says the engine refuses transactions above some size; the contract
	// then checks that the adapter reports it as kv.ErrTxnTooBig (within 256 MiB of
	// writes) and that the refused transaction left nothing behind.
	TxnLimit bool
}

// EngineContract checks a kv.Engine adapter against the contract of kv.Engine and
// kv.Tx, one promise per subtest, so that an adapter bug is reported as the broken
// promise ("Iterate returned a key outside its prefix") rather than as a few hundred
// failures of the conformance suite run on top of it. open returns a new, empty
// engine; the contract closes it.
//
// What is checked: Get of an absent key and of an empty value; Put, overwrite and
// Delete (of an absent key too); Iterate's bounds (prefix, start, keys with 0x00 and
// 0xff bytes), order and stopping (false, or an error that Iterate returns);
// own writes seen by Get and Iterate inside Update; rollback when Update's function
// fails; snapshot isolation of a View against an Update committed while it is
// open; the slices (Put does not modify them nor need them after the commit, a
// value Get returned is not changed by later writes of the same transaction); the
// errors of a closed engine (kv.ErrEngineClosed) and of a transaction too big
// (kv.ErrTxnTooBig).
func EngineContract(t *testing.T, open func(t *testing.T) kv.Engine, opts EngineOptions) {
	newEngine := func(t *testing.T) kv.Engine {
		t.Helper()
		e := open(t)
		closed := false
		t.Cleanup(func() {
			if !closed {
				_ = e.Close()
			}
		})
		return &closeOnce{Engine: e, closed: &closed}
	}
	for _, c := range contractCases {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.run(&contract{t}, newEngine(t))
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				panic(fmt.Sprintf("kvtest: engine contract case %s still runs after a minute: the adapter hangs", c.name))
			}
		})
	}
	if opts.TxnLimit {
		t.Run("TxnTooBig", func(t *testing.T) { txnTooBig(&contract{t}, newEngine(t)) })
	}
}

type closeOnce struct {
	kv.Engine
	closed *bool
}

func (c *closeOnce) Close() error {
	if *c.closed {
		return nil
	}
	*c.closed = true
	return c.Engine.Close()
}

// contract reports for one case. Its Fatalf runs in the case's goroutine and ends
// it (runtime.Goexit), which is what the case's runner waits for.
type contract struct{ reporter }

// reporter is the part of testing.TB the cases use.
type reporter interface {
	Helper()
	Fatalf(format string, args ...any)
}

func (c *contract) update(e kv.Engine, fn func(tx kv.Tx) error) {
	c.Helper()
	if err := e.Update(fn); err != nil {
		c.Fatalf("Update: %v", err)
	}
}

func (c *contract) view(e kv.Engine, fn func(tx kv.Tx) error) {
	c.Helper()
	if err := e.View(fn); err != nil {
		c.Fatalf("View: %v", err)
	}
}

func (c *contract) put(e kv.Engine, kvs ...string) {
	c.Helper()
	c.update(e, func(tx kv.Tx) error {
		for i := 0; i+1 < len(kvs); i += 2 {
			if err := tx.Put([]byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return fmt.Errorf("Put(%q): %w", kvs[i], err)
			}
		}
		return nil
	})
}

// keys returns what Iterate(prefix, start) visits.
func (c *contract) keys(tx kv.Tx, prefix, start string) []string {
	c.Helper()
	var out []string
	err := tx.Iterate([]byte(prefix), []byte(start), func(k, v []byte) (bool, error) {
		out = append(out, string(k))
		return true, nil
	})
	if err != nil {
		c.Fatalf("Iterate(%q, %q): %v", prefix, start, err)
	}
	return out
}

// checkRange checks one Iterate against the keys of all (sorted) that have prefix
// and are at or after start.
func (c *contract) checkRange(tx kv.Tx, all []string, prefix, start string) {
	c.Helper()
	got := c.keys(tx, prefix, start)
	var want []string
	for _, k := range all {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix && k >= start {
			want = append(want, k)
		}
	}
	for i, k := range got {
		switch {
		case len(k) < len(prefix) || k[:len(prefix)] != prefix:
			c.Fatalf("Iterate returned a key outside its prefix: Iterate(prefix %q, start %q) returned %q", prefix, start, k)
		case k < start:
			c.Fatalf("Iterate returned a key before its start: Iterate(prefix %q, start %q) returned %q", prefix, start, k)
		case i > 0 && k <= got[i-1]:
			c.Fatalf("Iterate returned keys out of order: Iterate(prefix %q, start %q) returned %q after %q (bytes.Compare order)", prefix, start, k, got[i-1])
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		c.Fatalf("Iterate missed keys: Iterate(prefix %q, start %q) returned %q, want %q", prefix, start, got, want)
	}
}

var contractCases = []struct {
	name string
	run  func(c *contract, e kv.Engine)
}{
	{"GetAbsent", func(c *contract, e kv.Engine) {
		c.view(e, func(tx kv.Tx) error {
			v, err := tx.Get([]byte("absent"))
			if v != nil || err != nil {
				c.Fatalf("Get of an absent key = %q, %v; want nil, nil", v, err)
			}
			return nil
		})
	}},
	{"EmptyValue", func(c *contract, e kv.Engine) {
		c.put(e, "k", "")
		c.view(e, func(tx kv.Tx) error {
			v, err := tx.Get([]byte("k"))
			if err != nil || v == nil || len(v) != 0 {
				c.Fatalf("Get of a key stored with an empty value = %#v, %v; want a non-nil empty slice (nil means absent)", v, err)
			}
			return nil
		})
	}},
	{"PutOverwriteDelete", func(c *contract, e kv.Engine) {
		c.put(e, "a", "1", "b", "2")
		c.put(e, "a", "one")
		c.update(e, func(tx kv.Tx) error {
			if err := tx.Delete([]byte("b")); err != nil {
				c.Fatalf("Delete of a present key: %v", err)
			}
			if err := tx.Delete([]byte("never")); err != nil {
				c.Fatalf("Delete of an absent key is an error: %v; it must be a no-op", err)
			}
			return nil
		})
		c.view(e, func(tx kv.Tx) error {
			if v, err := tx.Get([]byte("a")); err != nil || string(v) != "one" {
				c.Fatalf("Get after an overwrite = %q, %v; want %q", v, err, "one")
			}
			if v, err := tx.Get([]byte("b")); err != nil || v != nil {
				c.Fatalf("Get after Delete = %q, %v; want nil, nil", v, err)
			}
			return nil
		})
	}},
	{"IterateBounds", func(c *contract, e kv.Engine) {
		all := []string{"a", "a\xff", "b", "b\x00", "b\x00\x00", "b\x00\x01", "b\x01", "ba", "bb\xff", "b\xff", "b\xff\xff", "c", "c\x00"}
		var kvs []string
		for _, k := range all {
			kvs = append(kvs, k, "v:"+k)
		}
		c.put(e, kvs...)
		sorted := sortedCopy(all)
		c.view(e, func(tx kv.Tx) error {
			for _, r := range [][2]string{
				{"b", "b"}, {"b\x00", "b\x00"}, {"b\xff", "b\xff"}, {"a", "a"}, {"c", "c"},
				{"b", "b\x00\x01"}, {"b", "b\x00\x02"}, {"b", "ba"}, {"b", "bz"}, {"b", "b\xff\xff\xff"},
				{"bb", "bb"}, {"d", "d"}, {"", ""}, {"", "b\xff"}, {"b\x00", "b\x00\x00\x00"},
			} {
				c.checkRange(tx, sorted, r[0], r[1])
			}
			// The values come with their keys.
			err := tx.Iterate([]byte("b"), []byte("b"), func(k, v []byte) (bool, error) {
				if string(v) != "v:"+string(k) {
					c.Fatalf("Iterate passed key %q with value %q, want %q", k, v, "v:"+string(k))
				}
				return true, nil
			})
			if err != nil {
				c.Fatalf("Iterate: %v", err)
			}
			return nil
		})
	}},
	{"IterateStops", func(c *contract, e kv.Engine) {
		c.put(e, "p1", "", "p2", "", "p3", "")
		c.view(e, func(tx kv.Tx) error {
			n := 0
			err := tx.Iterate([]byte("p"), []byte("p"), func(k, v []byte) (bool, error) {
				n++
				return false, nil
			})
			if err != nil || n != 1 {
				c.Fatalf("Iterate whose function returned false made %d calls and returned %v; want 1 call and nil", n, err)
			}
			stop := errors.New("stop here")
			n = 0
			err = tx.Iterate([]byte("p"), []byte("p"), func(k, v []byte) (bool, error) {
				n++
				return true, fmt.Errorf("wrapped: %w", stop)
			})
			if !errors.Is(err, stop) || n != 1 {
				c.Fatalf("Iterate whose function failed made %d calls and returned %v; want 1 call and that error", n, err)
			}
			return nil
		})
	}},
	{"OwnWrites", func(c *contract, e kv.Engine) {
		c.put(e, "o1", "old", "o3", "old", "o5", "old")
		c.update(e, func(tx kv.Tx) error {
			for _, w := range [][2]string{{"o2", "new"}, {"o1", "changed"}, {"o6", "new"}} {
				if err := tx.Put([]byte(w[0]), []byte(w[1])); err != nil {
					return err
				}
			}
			if err := tx.Delete([]byte("o3")); err != nil {
				return err
			}
			if v, err := tx.Get([]byte("o1")); err != nil || string(v) != "changed" {
				c.Fatalf("Get inside Update after a Put of the same transaction = %q, %v; want %q", v, err, "changed")
			}
			if v, err := tx.Get([]byte("o3")); err != nil || v != nil {
				c.Fatalf("Get inside Update after a Delete of the same transaction = %q, %v; want nil", v, err)
			}
			var got []string
			err := tx.Iterate([]byte("o"), []byte("o"), func(k, v []byte) (bool, error) {
				got = append(got, string(k)+"="+string(v))
				return true, nil
			})
			if want := "[o1=changed o2=new o5=old o6=new]"; err != nil || fmt.Sprint(got) != want {
				c.Fatalf("Iterate inside Update does not see the transaction's own writes: %q, %v; want %s", got, err, want)
			}
			return nil
		})
	}},
	{"Rollback", func(c *contract, e kv.Engine) {
		c.put(e, "r1", "kept")
		fail := errors.New("the function failed")
		err := e.Update(func(tx kv.Tx) error {
			if err := tx.Put([]byte("r1"), []byte("overwritten")); err != nil {
				return err
			}
			if err := tx.Put([]byte("r2"), []byte("added")); err != nil {
				return err
			}
			return fail
		})
		if !errors.Is(err, fail) {
			c.Fatalf("Update whose function failed returned %v; want that error", err)
		}
		c.view(e, func(tx kv.Tx) error {
			v1, _ := tx.Get([]byte("r1"))
			v2, _ := tx.Get([]byte("r2"))
			if string(v1) != "kept" || v2 != nil {
				c.Fatalf("an Update whose function failed was committed: r1 = %q, r2 = %q; want %q and nothing", v1, v2, "kept")
			}
			return nil
		})
	}},
	{"SnapshotIsolation", func(c *contract, e kv.Engine) {
		c.put(e, "s1", "before", "s3", "before")
		c.view(e, func(tx kv.Tx) error {
			if v, _ := tx.Get([]byte("s1")); string(v) != "before" {
				c.Fatalf("Get = %q before any concurrent write", v)
			}
			committed := make(chan error, 1)
			go func() {
				committed <- e.Update(func(w kv.Tx) error {
					if err := w.Put([]byte("s1"), []byte("after")); err != nil {
						return err
					}
					if err := w.Put([]byte("s2"), []byte("after")); err != nil {
						return err
					}
					return w.Delete([]byte("s3"))
				})
			}()
			select {
			case err := <-committed:
				if err != nil {
					c.Fatalf("Update while a View is open: %v", err)
				}
			case <-time.After(10 * time.Second):
				c.Fatalf("an Update could not commit in 10 s while a View was open: the layer reads while it writes")
			}
			v, _ := tx.Get([]byte("s1"))
			keys := c.keys(tx, "s", "s")
			if string(v) != "before" || fmt.Sprint(keys) != "[s1 s3]" {
				c.Fatalf("a View saw a write committed after it began: Get(s1) = %q, Iterate = %q; want %q and [s1 s3]", v, keys, "before")
			}
			return nil
		})
		c.view(e, func(tx kv.Tx) error {
			if keys := c.keys(tx, "s", "s"); fmt.Sprint(keys) != "[s1 s2]" {
				c.Fatalf("a View begun after the commit sees %q, want [s1 s2]", keys)
			}
			return nil
		})
	}},
	{"Slices", func(c *contract, e kv.Engine) {
		k, v := []byte("slice-key"), []byte("slice-value")
		c.update(e, func(tx kv.Tx) error { return tx.Put(k, v) })
		if string(k) != "slice-key" || string(v) != "slice-value" {
			c.Fatalf("Put modified the slices it was given: %q, %q", k, v)
		}
		// After the commit the slices are the caller's again.
		copy(k, "XXXXXXXXX")
		copy(v, "YYYYYYYYYYY")
		c.update(e, func(tx kv.Tx) error {
			got, err := tx.Get([]byte("slice-key"))
			if err != nil || string(got) != "slice-value" {
				c.Fatalf("the value changed when the caller reused its slices after the commit: %q, %v", got, err)
			}
			// A value Get returned stays as it was until the transaction ends, even
			// when the same key is written again.
			if err := tx.Put([]byte("slice-key"), []byte("other-value")); err != nil {
				return err
			}
			if err := tx.Put([]byte("slice-key2"), bytes.Repeat([]byte("z"), 64<<10)); err != nil {
				return err
			}
			if string(got) != "slice-value" {
				c.Fatalf("a value returned by Get changed when the transaction wrote the key again: %q", got)
			}
			return nil
		})
	}},
	{"Closed", func(c *contract, e kv.Engine) {
		c.put(e, "x", "y")
		if err := e.Close(); err != nil {
			c.Fatalf("Close: %v", err)
		}
		if err := e.View(func(kv.Tx) error { return nil }); !errors.Is(err, kv.ErrEngineClosed) {
			c.Fatalf("View on a closed engine = %v; want an error matching kv.ErrEngineClosed", err)
		}
		if err := e.Update(func(kv.Tx) error { return nil }); !errors.Is(err, kv.ErrEngineClosed) {
			c.Fatalf("Update on a closed engine = %v; want an error matching kv.ErrEngineClosed", err)
		}
	}},
}

// txnTooBig writes 64 KiB values in one transaction until the engine refuses.
func txnTooBig(c *contract, e kv.Engine) {
	c.put(e, "big-before", "kept")
	val := bytes.Repeat([]byte("v"), 64<<10)
	var refused error
	err := e.Update(func(tx kv.Tx) error {
		for i := range 4096 { // 256 MiB
			if err := tx.Put(fmt.Appendf(nil, "big-%06d", i), val); err != nil {
				refused = err
				return err
			}
		}
		return errors.New("no limit reached")
	})
	switch {
	case refused == nil:
		c.Fatalf("256 MiB in one transaction were accepted; declare TxnLimit only for engines with a limit (Update: %v)", err)
	case !errors.Is(refused, kv.ErrTxnTooBig):
		c.Fatalf("the Put over the engine's transaction limit returned %v; want an error matching kv.ErrTxnTooBig", refused)
	case !errors.Is(err, kv.ErrTxnTooBig):
		c.Fatalf("Update whose function returned ErrTxnTooBig returned %v; want that error", err)
	}
	c.view(e, func(tx kv.Tx) error {
		if keys := c.keys(tx, "big-", "big-"); len(keys) != 1 {
			c.Fatalf("the refused transaction left %d keys behind, want only big-before", len(keys))
		}
		return nil
	})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
