package tool_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/tool"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// plant opens the closed bbolt file at path and lets f change the driver's bucket
// (key layout: persistence/kv/LAYOUT.md).
func plant(t *testing.T, path string, f func(b *bbolt.Bucket) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { return f(tx.Bucket([]byte("mqttstore"))) }); err != nil {
		t.Fatal(err)
	}
}

func flip(b *bbolt.Bucket, k []byte) error {
	v := bytes.Clone(b.Get(k))
	v[len(v)/2] ^= 0x5a
	return b.Put(bytes.Clone(k), v)
}

// TestCheckFindsPlantedFaults plants one fault of each kind check looks for in a
// bolt store built by the broker and expects check to report every one of them.
func TestCheckFindsPlantedFaults(t *testing.T) {
	ctx := testCtx(t)
	path := t.TempDir() + "/s.db"
	url := "bolt://" + path + "?sync=none"
	st := openStore(t, url)
	buildBrokerStore(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := tool.Check(ctx, url, tool.Options{})
	if err != nil || !rep.Clean() {
		t.Fatalf("check of the intact store: %+v, %v", rep, err)
	}

	plant(t, path, func(b *bbolt.Bucket) error {
		c := b.Cursor()
		var packet, count, sub, ret []byte
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			switch {
			case k[0] == 'p' && len(k) == 17 && !bytes.Equal(k[9:], bytes.Repeat([]byte{0xff}, 8)) && packet == nil:
				packet = bytes.Clone(k) // the first packet of the first queue
			case k[0] == 'p' && len(k) == 17 && bytes.Equal(k[9:], bytes.Repeat([]byte{0xff}, 8)):
				count = bytes.Clone(k) // the last queue's counter
			case k[0] == 'u' && bytes.Contains(k, []byte("willer")):
				sub = bytes.Clone(k) // the will session has no packets
			case k[0] == 'r' && ret == nil:
				ret = bytes.Clone(k)
			}
		}
		if packet == nil || count == nil || sub == nil || ret == nil || bytes.Equal(packet[1:9], count[1:9]) {
			t.Fatalf("layout not as expected: packet %x count %x sub %x retained %x", packet, count, sub, ret)
		}
		if err := flip(b, packet); err != nil {
			return err
		}
		if err := flip(b, sub); err != nil {
			return err
		}
		if err := flip(b, ret); err != nil {
			return err
		}
		n := binary.BigEndian.Uint64(b.Get(count))
		if err := b.Put(count, binary.BigEndian.AppendUint64(nil, n+3)); err != nil {
			return err
		}
		n = binary.BigEndian.Uint64(b.Get([]byte("ms")))
		if err := b.Put([]byte("ms"), binary.BigEndian.AppendUint64(nil, n+5)); err != nil {
			return err
		}
		// An expiry index entry for a session that does not exist.
		k := []byte{'x'}
		k = binary.BigEndian.AppendUint64(k, uint64(time.Now().Add(time.Hour).Unix())^(1<<63))
		k = binary.BigEndian.AppendUint32(k, 0)
		k = binary.BigEndian.AppendUint64(k, 1)
		k = append(k, "ghost"...)
		return b.Put(k, driver.EncodeExpiry(nil, persistence.SessionExpiry{ExpireAt: time.Now().Add(time.Hour)}))
	})

	rep, err = tool.Check(ctx, url, tool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, p := range rep.Problems {
		all = append(all, p.Kind+": "+p.Where+": "+p.Detail)
	}
	report := strings.Join(all, "\n")
	t.Logf("check found:\n%s", report)
	for _, want := range []string{
		"broken: session",            // the packet that does not decode, reported with its session and class
		`"willer"`,                   // the session whose subscription does not decode
		"broken: retained",           // the retained message that does not decode
		"count: session",             // the queue counter 3 too high
		"count: sessions",            // the session counter 5 too high
		`expiry index entry "ghost"`, // the index entry that points nowhere
	} {
		if !strings.Contains(report, want) {
			t.Errorf("check did not report %q", want)
		}
	}
	if rep.Clean() {
		t.Fatal("check says clean")
	}
}
