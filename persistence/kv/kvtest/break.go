package kvtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv"
)

// Corrupt is the conformance harness's Corrupt hook for drivers built on
// persistence/kv (and a helper of the tools' repair tests): it flips bits in the
// middle and at the end of the value of the record r names in p, open, as a bad disk
// sector would, so that its CRC no longer matches. Keys follow
// persistence/kv/LAYOUT.md; a retained topic must fit a short-form key.
func Corrupt(t testing.TB, p *persistence.Store, r persistence.BrokenRecord) {
	t.Helper()
	err := Engine(p).Update(func(tx kv.Tx) error {
		k, err := RecordKey(tx, r)
		if err != nil {
			return err
		}
		v, err := tx.Get(k)
		if err != nil {
			return err
		}
		if len(v) == 0 {
			return fmt.Errorf("no %s record at key %q", r.Kind, k)
		}
		nv := bytes.Clone(v)
		nv[len(nv)/2] ^= 0x5a
		nv[len(nv)-1] ^= 0xff
		return tx.Put(k, nv)
	})
	if err != nil {
		t.Fatalf("corrupt %s %q: %v", r.Kind, r.ID, err)
	}
}

// RecordKey returns the key of the record r names (see [Corrupt]), reading the
// session's header for a packet's queue and the retained generation for a topic.
func RecordKey(tx kv.Tx, r persistence.BrokenRecord) ([]byte, error) {
	lenID := func(tag byte) []byte {
		return append(binary.AppendUvarint([]byte{tag}, uint64(len(r.ID))), r.ID...)
	}
	switch r.Kind {
	case persistence.RecordSession:
		return lenID('s'), nil
	case persistence.RecordState:
		return append([]byte{'t'}, r.ID...), nil
	case persistence.RecordExpiry:
		return append([]byte{'e'}, r.ID...), nil
	case persistence.RecordSubscription:
		return append(lenID('u'), r.Name...), nil
	case persistence.RecordPacket:
		h, err := tx.Get(append([]byte{'h'}, r.ID...))
		if err != nil || len(h) != 52 || !r.Class.Valid() {
			return nil, fmt.Errorf("session %q: header %x, class %d: %v", r.ID, h, r.Class, err)
		}
		k := append([]byte{'p'}, h[20+8*(r.Class-1):28+8*(r.Class-1)]...)
		return binary.BigEndian.AppendUint64(k, r.Seq), nil
	case persistence.RecordRetained:
		gen, err := tx.Get([]byte("mg"))
		if err != nil {
			return nil, err
		}
		if gen == nil {
			gen = make([]byte, 8)
		}
		return append(append([]byte{'r'}, gen...), r.Name...), nil
	}
	return nil, fmt.Errorf("no key for a %s record", r.Kind)
}
