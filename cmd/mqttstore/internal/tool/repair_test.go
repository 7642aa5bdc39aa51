package tool_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/archive"
	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/tool"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/kv"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// repairFaults are the records the repair test breaks in a store buildBrokerStore
// made (the packet's Seq is filled in from the store).
func repairFaults() []persistence.BrokenRecord {
	return []persistence.BrokenRecord{
		{Kind: persistence.RecordPacket, ID: "queued", Class: persistence.ClassQoS12}, // its first packet
		{Kind: persistence.RecordSubscription, ID: "willer", Name: "z"},
		{Kind: persistence.RecordState, ID: "queued"},
		{Kind: persistence.RecordExpiry, ID: "queued"},
		{Kind: persistence.RecordSession, ID: "incoming"}, // with an Incoming packet and a state
		{Kind: persistence.RecordRetained, Name: "ret/a"},
	}
}

// plantKV breaks the fault records of the open kv store st and its derived data:
// the session count 5 too high, the count of "inflight"'s UnAck queue 3 too high and
// an expiry index entry for a session that does not exist.
func plantKV(t *testing.T, st *persistence.Store, faults []persistence.BrokenRecord) {
	for _, r := range faults {
		kvtest.Corrupt(t, st, r)
	}
	err := kvtest.Engine(st).Update(func(tx kv.Tx) error {
		add := func(k []byte, d uint64) error {
			v, err := tx.Get(k)
			if err != nil || len(v) != 8 {
				return fmt.Errorf("counter %q: %x, %v", k, v, err)
			}
			return tx.Put(k, binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(v)+d))
		}
		if err := add([]byte("ms"), 5); err != nil {
			return err
		}
		k, err := kvtest.RecordKey(tx, persistence.BrokenRecord{Kind: persistence.RecordPacket, ID: "inflight", Class: persistence.ClassUnAck, Seq: 1<<64 - 1})
		if err != nil {
			return err
		}
		if err := add(k, 3); err != nil {
			return err
		}
		x := []byte{'x'}
		x = binary.BigEndian.AppendUint64(x, uint64(time.Now().Add(time.Hour).Unix())^(1<<63))
		x = binary.BigEndian.AppendUint32(x, 0)
		x = binary.BigEndian.AppendUint64(x, 1)
		x = append(x, "ghost"...)
		return tx.Put(x, driver.EncodeExpiry(nil, persistence.SessionExpiry{ExpireAt: time.Now().Add(time.Hour)}))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readArchive returns the records of archive file as kind+body strings, counted.
func readArchive(t *testing.T, file string) map[string]int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := archive.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := archive.AppendBody([]byte{byte(rec.Kind)}, rec)
		if err != nil {
			t.Fatal(err)
		}
		out[string(body)]++
	}
}

// group names the place of an archive record, as an aside line can name it.
func group(body string) string {
	rec, err := archive.ParseBody(archive.Kind(body[0]), []byte(body[1:]))
	if err != nil {
		panic(err)
	}
	switch rec.Kind {
	case archive.KindPacket:
		return fmt.Sprintf("packet %q %s", rec.ID, rec.Class)
	case archive.KindRetained:
		return fmt.Sprintf("retained %q", rec.Topic)
	}
	return fmt.Sprintf("%s %q", map[archive.Kind]string{archive.KindSession: "session", archive.KindSubscription: "subscription",
		archive.KindState: "state", archive.KindExpiry: "expiry"}[rec.Kind], rec.ID)
}

func asideGroup(a tool.AsideRecord) string {
	switch a.Kind {
	case persistence.RecordPacket:
		return fmt.Sprintf("packet %q %s", a.Session, a.Class)
	case persistence.RecordRetained:
		return fmt.Sprintf("retained %q", a.Name)
	}
	return fmt.Sprintf("%s %q", a.Kind, a.Session)
}

func readAside(t *testing.T, file string) []tool.AsideRecord {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []tool.AsideRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var a tool.AsideRecord
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("aside file line %d: %v", len(out)+1, err)
		}
		out = append(out, a)
	}
	return out
}

func problems(rep *tool.CheckReport) string {
	var all []string
	for _, p := range rep.Problems {
		all = append(all, p.Kind+": "+p.Where+": "+p.Detail)
	}
	return strings.Join(all, "\n")
}

// TestRepair breaks records and derived data of a store built by the broker, then
// checks that check finds every fault, that check --repair leaves a clean store,
// writes every removed record to the aside file and loses nothing readable (an
// export before the damage is compared with one after the repair), and that a
// second repair does nothing.
func TestRepair(t *testing.T) {
	for _, d := range drivers() {
		if d.name == "mem" {
			continue // nothing of an in-memory store can break, nor outlive the process
		}
		t.Run(d.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			url := d.url(t)
			st := openStore(t, url)
			buildBrokerStore(t, st)
			faults := repairFaults()
			err := st.Sessions().PacketsForEach(ctx, "queued", persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
				faults[0].Seq = p.Seq
				return false, persistence.ErrStopIteration
			})
			if err != nil || faults[0].Seq == 0 {
				t.Fatalf("first packet of queued: seq %d, %v", faults[0].Seq, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			before := filepath.Join(dir, "before.mqs")
			if _, err := tool.Export(ctx, url, before, io.Discard, tool.Options{}); err != nil {
				t.Fatal(err)
			}

			want := []string{
				fmt.Sprintf(`"queued": %s packet %d`, persistence.ClassQoS12, faults[0].Seq),
				`subscription`, `"willer"`, `state of session "queued"`, `expiry of session "queued"`, `session "incoming"`, `"ret/a"`,
			}
			if d.name == "postgres" {
				for _, r := range faults {
					pgtest.Corrupt(t, url, r)
				}
				// A due time that disagrees with the session's deadlines.
				if n := pgtest.Exec(t, url, `UPDATE mqtt_sessions SET due_sec = due_sec + 1000 WHERE id = 'willer'`); n != 1 {
					t.Fatalf("planted %d due times", n)
				}
			} else {
				st = openStore(t, url)
				plantKV(t, st, faults)
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				want = append(want, `count: session "inflight" class UnAck`, "count: sessions", `expiry index entry "ghost"`)
			}

			rep, err := tool.Check(ctx, url, tool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			found := problems(rep)
			t.Logf("check found:\n%s", found)
			for _, w := range want {
				if !strings.Contains(found, w) {
					t.Errorf("check did not report %q", w)
				}
			}

			rr, err := tool.Repair(ctx, url, dir, tool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("repair: removed %d, saved %d to %s, fixes %+v", rr.Removed, rr.Saved, rr.Aside, rr.Fixes)
			if !rr.After.Clean() {
				t.Fatalf("check after the repair:\n%s", problems(rr.After))
			}
			if rr.Removed != len(faults) {
				t.Errorf("repair removed %d broken records, want %d", rr.Removed, len(faults))
			}
			if d.name == "postgres" && len(rr.Fixes) != 1 {
				t.Errorf("repair made %d fixes, want 1 (the due time)", len(rr.Fixes))
			}
			if d.name != "postgres" && len(rr.Fixes) < 3 {
				t.Errorf("repair made %d fixes, want at least 3 (two counters, the ghost entry)", len(rr.Fixes))
			}
			aside := readAside(t, rr.Aside)
			if len(aside) != rr.Saved {
				t.Errorf("aside file holds %d lines, the report says %d", len(aside), rr.Saved)
			}
			inAside := map[string]int{}
			for _, a := range aside {
				if len(a.Raw) == 0 || (a.Error == "") != a.Readable {
					t.Errorf("aside line %+v: want raw bytes, and an error exactly when not readable", a)
				}
				inAside[asideGroup(a)]++
			}

			// Nothing readable lost: every record of the export before the damage
			// is in the store after the repair, or in the aside file; and the store
			// holds nothing the export did not.
			after := filepath.Join(dir, "after.mqs")
			if _, err := tool.Export(ctx, url, after, io.Discard, tool.Options{}); err != nil {
				t.Fatal(err)
			}
			a, b := readArchive(t, before), readArchive(t, after)
			missing := map[string]int{}
			for body, n := range a {
				if k := n - b[body]; k > 0 {
					missing[group(body)] += k
				}
			}
			for body, n := range b {
				if n > a[body] {
					t.Errorf("the repaired store holds a record the store never held: %s", group(body))
				}
			}
			for g, n := range missing {
				if inAside[g] < n {
					t.Errorf("%d records of %s were removed, the aside file holds %d", n, g, inAside[g])
				}
			}
			for _, g := range []string{`packet "incoming" Incoming`, `session "incoming"`, `retained "ret/a"`, `subscription "willer"`} {
				if inAside[g] == 0 {
					t.Errorf("the aside file holds no %s", g)
				}
			}

			// A second repair is a no-op.
			again, err := tool.Repair(ctx, url, dir, tool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !again.Before.Clean() || again.Removed != 0 || again.Aside != "" || len(again.Fixes) != 0 {
				t.Errorf("second repair: before %s, removed %d, aside %q, fixes %+v", problems(again.Before), again.Removed, again.Aside, again.Fixes)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "mqttstore-aside-*")); len(files) != 1 {
				t.Errorf("aside files: %q, want exactly one", files)
			}
		})
	}
}
