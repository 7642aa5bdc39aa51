package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// populate writes sessions with subscriptions, state, deadlines and packets, and
// retained messages, through the SDK.
func populate(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := persistence.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 20 {
		id := fmt.Sprintf("client-%02d", i)
		b := (&persistence.Batch{}).Create(id, persistence.SessionBase{ProtocolVersion: 5, CreatedAt: time.Unix(1700000000, 0)}).
			SubscriptionStore(id, persistence.Subscription{Filter: "t/" + id + "/#", QoS: 1}).
			StateStore(id, &persistence.SessionState{ProtocolVersion: 5, ExpiryInterval: time.Hour, Username: "u"}).
			ExpiryStore(id, persistence.SessionExpiry{ExpireAt: time.Now().Add(time.Hour)})
		for j := range i {
			b.PacketAppend(id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, PacketID: uint16(j + 1), ProtocolVersion: 5, Data: []byte{0x32, 5, 0, 1, 't', 0, 1}})
		}
		if _, err := st.Sessions().Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := st.Retained().Put(ctx, "r/"+id, &persistence.PersistedPacket{Data: []byte{0x31, 3, 0, 1, 'r'}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	src := "bolt://" + dir + "/src.db"
	populate(t, src)
	file := dir + "/backup.mqs"

	code, out, errs := cli(t, "export", "--progress=plain", src, file)
	if code != 0 || !strings.Contains(out, "exported 290 records") {
		t.Fatalf("export: %d %s %s", code, out, errs)
	}
	code, out, errs = cli(t, "import", "--progress=none", file, "badger://"+dir+"/imp")
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	code, out, errs = cli(t, "migrate", "--progress=plain", src, "badger://"+dir+"/mig")
	if code != 0 || !strings.Contains(out, "verified") || !strings.Contains(errs, "migrate: 290/290 items (100.0%)") {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	t.Logf("migrate output:\n%s%s", errs, out)
	// Into a store that is no longer empty: refused.
	if code, _, errs = cli(t, "migrate", "--progress=none", src, "badger://"+dir+"/mig"); code != 2 || !strings.Contains(errs, "not empty") {
		t.Fatalf("migrate into non-empty: %d %s", code, errs)
	}
	if code, _, errs = cli(t, "import", "--progress=none", file, "badger://"+dir+"/mig"); code != 2 || !strings.Contains(errs, "not empty") {
		t.Fatalf("import into non-empty: %d %s", code, errs)
	}

	code, out, _ = cli(t, "inspect", "--json", "badger://"+dir+"/mig")
	var rep struct {
		Kinds   map[string]struct{ Count uint64 } `json:"kinds"`
		Largest []struct {
			Session string
			Packets uint64
		} `json:"largest_queues"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("inspect --json: %d %v\n%s", code, err, out)
	}
	if rep.Kinds["sessions"].Count != 20 || rep.Kinds["packets/QoS12"].Count != 190 || rep.Kinds["retained"].Count != 20 || rep.Largest[0].Session != "client-19" {
		t.Fatalf("inspect: %+v", rep)
	}
	if code, out, _ = cli(t, "inspect", src, "--session", "client-03"); code != 0 || !strings.Contains(out, `"t/client-03/#"`) || !strings.Contains(out, "packets QoS12 (3)") {
		t.Fatalf("inspect --session: %d\n%s", code, out)
	}
	if code, _, errs = cli(t, "inspect", src, "--session", "nobody"); code != 2 || !strings.Contains(errs, "not found") {
		t.Fatalf("inspect --session nobody: %d %s", code, errs)
	}
	if code, out, _ = cli(t, "inspect", src, "--retained", "r/client-01", "--retained", "r/client-10"); code != 0 || strings.Count(out, `"r/client-`) != 2 {
		t.Fatalf("inspect --retained: %d\n%s", code, out)
	}
	if code, _, errs = cli(t, "inspect", src, "--retained", "r/client-0+"); code != 2 || !strings.Contains(errs, "invalid") {
		t.Fatalf("inspect --retained with a bad filter: %d %s", code, errs)
	}
	if code, out, _ = cli(t, "inspect", src, "--retained", "r/#"); code != 0 || strings.Count(out, `"r/client-`) != 20 {
		t.Fatalf("inspect --retained r/#: %d\n%s", code, out)
	}
	if code, out, _ = cli(t, "check", "--progress=none", src); code != 0 || !strings.Contains(out, "clean") {
		t.Fatalf("check: %d\n%s", code, out)
	}
	for _, u := range []string{src, "badger://" + dir + "/mig"} {
		if code, out, errs = cli(t, "compact", u); code != 0 || !strings.Contains(out, "compacted") {
			t.Fatalf("compact %s: %d %s %s", u, code, out, errs)
		}
		t.Log(strings.TrimSpace(out))
	}
	if code, _, _ = cli(t, "check", "--progress=none", "badger://"+dir+"/mig"); code != 0 {
		t.Fatal("check after compact is not clean")
	}
	if code, _, errs = cli(t, "compact", "mem://"); code != 2 || !strings.Contains(errs, "not supported") {
		t.Fatalf("compact mem: %d %s", code, errs)
	}
	if code, _, errs = cli(t, "inspect", "nosuch://x"); code != 2 || !strings.Contains(errs, "unknown provider") {
		t.Fatalf("unknown scheme: %d %s", code, errs)
	}
	if code, _, _ = cli(t, "export"); code != 2 {
		t.Fatalf("usage error: %d", code)
	}
}
