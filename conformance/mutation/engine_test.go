package mutation

// Bugs planted in the kv.Engine adapter under persistence/kv: the mistakes an
// author makes adapting another ordered key-value engine (cursor bounds, page
// limits, rollback, absent keys, value limits).

import (
	"bytes"

	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// engineWrap wraps every transaction of an engine.
type engineWrap struct {
	kv.Engine
	tx func(kv.Tx) kv.Tx
}

func (e engineWrap) View(fn func(kv.Tx) error) error {
	return e.Engine.View(func(tx kv.Tx) error { return fn(e.tx(tx)) })
}

func (e engineWrap) Update(fn func(kv.Tx) error) error {
	return e.Engine.Update(func(tx kv.Tx) error { return fn(e.tx(tx)) })
}

func withTx(tx func(kv.Tx) kv.Tx) func(kv.Engine) kv.Engine {
	return func(e kv.Engine) kv.Engine { return engineWrap{Engine: e, tx: tx} }
}

// iterTx changes Iterate.
type iterTx struct {
	kv.Tx
	iterate func(tx kv.Tx, prefix, start []byte, fn func(k, v []byte) (bool, error)) error
}

func (t iterTx) Iterate(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	return t.iterate(t.Tx, prefix, start, fn)
}

func withIterate(f func(tx kv.Tx, prefix, start []byte, fn func(k, v []byte) (bool, error)) error) func(kv.Engine) kv.Engine {
	return withTx(func(tx kv.Tx) kv.Tx { return iterTx{Tx: tx, iterate: f} })
}

// iterateStartExclusive starts after start instead of at it (a cursor Seek
// followed by Next) when start is past the prefix: every page but the first loses
// its first item.
var iterateStartExclusive = withIterate(func(tx kv.Tx, prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	skip := !bytes.Equal(prefix, start)
	return tx.Iterate(prefix, start, func(k, v []byte) (bool, error) {
		if skip && bytes.Equal(k, start) {
			skip = false
			return true, nil
		}
		skip = false
		return fn(k, v)
	})
})

// iterateCapped stops every Iterate after 255 keys (a batch limit off by one):
// the layer takes the short page for the last one.
var iterateCapped = withIterate(func(tx kv.Tx, prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	n := 0
	return tx.Iterate(prefix, start, func(k, v []byte) (bool, error) {
		if n++; n > 255 {
			return false, nil
		}
		return fn(k, v)
	})
})

// iteratePastPrefix checks the prefix one key late: the first key after the
// prefix is delivered too.
type pastPrefixTx struct{ kv.Tx }

func (t pastPrefixTx) Iterate(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	var stop bool
	err := t.Tx.Iterate(prefix, start, func(k, v []byte) (bool, error) {
		more, err := fn(k, v)
		stop = !more || err != nil
		return more, err
	})
	if err != nil || stop {
		return err
	}
	// the key just after the prefix range, if any
	end := prefixEnd(prefix)
	if end == nil {
		return nil
	}
	return t.Tx.Iterate(end[:1], end, func(k, v []byte) (bool, error) {
		_, err := fn(k, v)
		return false, err
	})
}

// prefixEnd returns the smallest key after every key with prefix p, or nil.
func prefixEnd(p []byte) []byte {
	e := bytes.Clone(p)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

// getAbsentEmpty returns an empty, non-nil slice for an absent key.
type getAbsentEmpty struct{ kv.Tx }

func (t getAbsentEmpty) Get(k []byte) ([]byte, error) {
	v, err := t.Tx.Get(k)
	if v == nil && err == nil {
		return []byte{}, nil
	}
	return v, err
}

// truncateValues stores at most 64 KiB of a value (an engine's value limit,
// silently applied).
type truncateValues struct{ kv.Tx }

func (t truncateValues) Put(k, v []byte) error {
	if len(v) > 64<<10 {
		v = v[:64<<10]
	}
	return t.Tx.Put(k, v)
}

// schemaBypassed rewrites the stored SystemInfo to this SDK's schema version as it
// is read: the driver never refuses a newer store.
type schemaBypassed struct{ kv.Tx }

func (t schemaBypassed) Get(k []byte) ([]byte, error) {
	v, err := t.Tx.Get(k)
	if err != nil || v == nil || string(k) != "mi" {
		return v, err
	}
	info, derr := driver.DecodeSystemInfo(v)
	if derr != nil {
		return v, err
	}
	info.SchemaVersion = driver.SchemaVersion
	return driver.EncodeSystemInfo(nil, info), nil
}

// commitsOnError commits an Update whose function failed, instead of rolling it
// back: an adapter that calls Commit unconditionally.
type commitsOnError struct{ kv.Engine }

func (e commitsOnError) Update(fn func(kv.Tx) error) error {
	be := e.Engine.(*boltEngine)
	tx, err := be.db.Begin(true)
	if err != nil {
		return mapErr(err)
	}
	ferr := fn(boltTx{tx.Bucket(bucket)})
	if err := tx.Commit(); err != nil {
		return err
	}
	return ferr
}
