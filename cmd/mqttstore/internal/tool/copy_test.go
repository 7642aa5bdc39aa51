package tool_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/archive"
	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/tool"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/mem"
	_ "github.com/mqttstore/mqttstore/providers/postgres"
)

// Environment of the child process that TestMigrateKilledAndResumed kills.
const (
	envChild  = "MQTTSTORE_TOOL_TEST_CHILD"
	envSrc    = "MQTTSTORE_TOOL_TEST_SRC"
	envDst    = "MQTTSTORE_TOOL_TEST_DST"
	envHangAt = "MQTTSTORE_TOOL_TEST_HANG_AT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(childMigrate())
	}
	pgtest.Main(m)
}

// childMigrate runs a migrate that, after its Nth committed batch, says so on
// stdout and hangs until the parent kills it.
func childMigrate() int {
	n, _ := strconv.Atoi(os.Getenv(envHangAt))
	tool.SetCommitHook(func(c int) {
		if c == n {
			fmt.Println("COMMITTED", c)
			select {} // the parent SIGKILLs us here
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := tool.Migrate(ctx, os.Getenv(envSrc), os.Getenv(envDst), tool.Options{}); err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	fmt.Println("FINISHED")
	return 0
}

// storeKind makes fresh stores of one driver.
type storeKind struct {
	name string
	url  func(t testing.TB) string
}

func drivers() []storeKind {
	return []storeKind{
		{"mem", func(testing.TB) string { return "mem://" }},
		{"bolt", func(t testing.TB) string { return "bolt://" + t.TempDir() + "/s.db?sync=none" }},
		{"badger", func(t testing.TB) string { return "badger://" + t.TempDir() + "?sync=none&memory=low" }},
		{"postgres", func(t testing.TB) string { return pgtest.DSN(t) }},
	}
}

func openStore(t testing.TB, url string) *persistence.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := persistence.Open(ctx, url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantLayout checks that sum holds what buildBrokerStore writes.
func wantLayout(t testing.TB, sum archive.Summary) {
	t.Helper()
	want := map[archive.DigestKey]uint64{
		"sessions": 4, "packets/QoS0": qos0Msgs, "packets/QoS12": queuedMsgs,
		"packets/UnAck": inflightMsgs, "packets/Incoming": 1, "retained": retainedMsgs,
	}
	for _, k := range archive.Keys() {
		got := sum[k].Count
		if w, ok := want[k]; ok && got != w || got == 0 {
			t.Errorf("%s: %d records, want %d (at least one)", k, got, want[k])
		}
	}
}

func summarize(t testing.TB, st *persistence.Store) archive.Summary {
	t.Helper()
	sum, err := tool.Summarize(testCtx(t), st)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// restoreCheck starts the real broker on st and checks what it restored.
func restoreCheck(t testing.TB, st *persistence.Store) {
	t.Helper()
	ctx := testCtx(t)
	b, err := broker.New(ctx, broker.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r := b.Restored()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Sessions != 4 || r.Retained != retainedMsgs || r.InflightMessages < inflightMsgs || r.QueuedMessages < queuedMsgs {
		t.Errorf("broker restored %+v from the copy", r)
	}
}

// TestCopyAllPairs builds a store with the real broker on every driver, then
// migrates it into, and exports and imports it into, a fresh store of every driver,
// and compares counts and content digests of every kind; the broker then restores
// the copy.
func TestCopyAllPairs(t *testing.T) {
	for _, src := range drivers() {
		t.Run(src.name, func(t *testing.T) {
			s := openStore(t, src.url(t))
			buildBrokerStore(t, s)
			want := summarize(t, s)
			wantLayout(t, want)
			var arch bytes.Buffer
			tr, err := tool.ExportTo(testCtx(t), s, &arch, tool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if bad := tr.Summary.Diff(want); len(bad) > 0 {
				t.Fatalf("export trailer differs in %v", bad)
			}
			for _, dst := range drivers() {
				t.Run("migrate-to-"+dst.name, func(t *testing.T) {
					d := openStore(t, dst.url(t))
					rep, err := tool.MigrateStores(testCtx(t), s, d, "test source", tool.Options{})
					if err != nil {
						t.Fatal(err)
					}
					if !rep.Verified || rep.Resumed {
						t.Fatalf("report %+v", rep)
					}
					if bad := summarize(t, d).Diff(want); len(bad) > 0 {
						t.Fatalf("destination differs in %v", bad)
					}
					if n, _ := d.Sessions().Count(testCtx(t)); n != want["sessions"].Count {
						t.Fatalf("destination has %d sessions (marker left?)", n)
					}
					restoreCheck(t, d)
				})
				t.Run("import-to-"+dst.name, func(t *testing.T) {
					d := openStore(t, dst.url(t))
					rep, err := tool.ImportFrom(testCtx(t), bytes.NewReader(arch.Bytes()), d, tool.Options{})
					if err != nil {
						t.Fatal(err)
					}
					if !rep.Verified {
						t.Fatalf("report %+v", rep)
					}
					if bad := summarize(t, d).Diff(want); len(bad) > 0 {
						t.Fatalf("destination differs in %v", bad)
					}
					restoreCheck(t, d)
				})
			}
		})
	}
}

func TestRefusesNonEmpty(t *testing.T) {
	ctx := testCtx(t)
	src := openStore(t, "mem://")
	buildBrokerStore(t, src)
	dst := openStore(t, "bolt://"+t.TempDir()+"/d.db?sync=none")
	if err := dst.Retained().Put(ctx, "other", &persistence.PersistedPacket{Data: []byte{0x30, 0}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tool.MigrateStores(ctx, src, dst, "src", tool.Options{}); !errors.Is(err, tool.ErrNotEmpty) {
		t.Fatalf("migrate into a non-empty store: %v, want ErrNotEmpty", err)
	}
	var arch bytes.Buffer
	if _, err := tool.ExportTo(ctx, src, &arch, tool.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tool.ImportFrom(ctx, bytes.NewReader(arch.Bytes()), dst, tool.Options{}); !errors.Is(err, tool.ErrNotEmpty) {
		t.Fatalf("import into a non-empty store: %v, want ErrNotEmpty", err)
	}
	// --force: archive records replace, the rest stays; twice gives the same result.
	for range 2 {
		if _, err := tool.ImportFrom(ctx, bytes.NewReader(arch.Bytes()), dst, tool.Options{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	got, want := summarize(t, dst), summarize(t, src)
	for _, k := range archive.Keys() {
		w := want[k].Count
		if k == "retained" {
			w++
		}
		if got[k].Count != w {
			t.Errorf("%s: %d after forced imports, want %d", k, got[k].Count, w)
		}
	}
}

// TestArchiveCorruptionRefused flips one byte at many places of an archive: every
// import fails with archive.ErrCorrupt, none panics.
func TestArchiveCorruptionRefused(t *testing.T) {
	ctx := testCtx(t)
	src := openStore(t, "mem://")
	buildBrokerStore(t, src)
	var arch bytes.Buffer
	if _, err := tool.ExportTo(ctx, src, &arch, tool.Options{}); err != nil {
		t.Fatal(err)
	}
	b := arch.Bytes()
	for i := 0; i < len(b); i += 1 + len(b)/97 {
		bad := bytes.Clone(b)
		bad[i] ^= 0x40
		dst := openStore(t, "mem://")
		_, err := tool.ImportFrom(ctx, bytes.NewReader(bad), dst, tool.Options{})
		if !archive.IsCorrupt(err) {
			t.Fatalf("byte %d flipped: import returned %v, want ErrCorrupt", i, err)
		}
	}
	for _, n := range []int{0, 5, len(b) / 2, len(b) - 1} {
		dst := openStore(t, "mem://")
		if _, err := tool.ImportFrom(ctx, bytes.NewReader(b[:n]), dst, tool.Options{}); !archive.IsCorrupt(err) {
			t.Fatalf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
}

// startChild runs the test binary as a migrate child that hangs after its hangAt-th
// commit, waits for it to say so and SIGKILLs it.
func killChildAt(t *testing.T, src, dst string, hangAt int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envSrc+"="+src, envDst+"="+dst, envHangAt+"="+strconv.Itoa(hangAt))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var line string
	for sc.Scan() {
		line = sc.Text()
		if strings.HasPrefix(line, "COMMITTED") || strings.HasPrefix(line, "ERROR") || line == "FINISHED" {
			break
		}
	}
	_ = cmd.Process.Kill() // SIGKILL
	_ = cmd.Wait()
	if !strings.HasPrefix(line, "COMMITTED") {
		t.Fatalf("child did not reach commit %d: %q", hangAt, line)
	}
}

// TestMigrateKilledAndResumed SIGKILLs a migrate twice (the second time while it
// resumes), then runs it to the end: the destination ends equal to the source.
func TestMigrateKilledAndResumed(t *testing.T) {
	for _, c := range []struct{ src, dst string }{{"bolt", "badger"}, {"badger", "bolt"}} {
		t.Run(c.src+"-to-"+c.dst, func(t *testing.T) {
			dir := t.TempDir()
			urls := map[string]string{"bolt": "bolt://" + dir + "/%s.db?sync=always", "badger": "badger://" + dir + "/%s?sync=always&memory=low"}
			srcURL, dstURL := fmt.Sprintf(urls[c.src], "src"), fmt.Sprintf(urls[c.dst], "dst")
			s := openStore(t, srcURL)
			buildBrokerStore(t, s)
			ctx := testCtx(t)
			// A queue longer than a batch, so a kill lands inside one session, and
			// many small sessions, so batches also span sessions.
			pp := &persistence.PersistedPackets{}
			for i := range 2500 {
				pp.QoS12 = append(pp.QoS12, &persistence.PersistedPacket{QoS: 1, PacketID: uint16(i + 1), ProtocolVersion: 4, Data: fmt.Appendf(nil, "backlog %d", i)})
			}
			if err := s.Sessions().PacketsStore(ctx, "queued", pp); err != nil {
				t.Fatal(err)
			}
			for i := range 300 {
				id := fmt.Sprintf("small-%03d", i)
				b := (&persistence.Batch{}).Create(id, persistence.SessionBase{ProtocolVersion: 4}).
					SubscriptionStore(id, persistence.Subscription{Filter: "s/" + id, QoS: 1}).
					PacketAppend(id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte(id)})
				if _, err := s.Sessions().Apply(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			want := summarize(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			killChildAt(t, srcURL, dstURL, 2)
			killChildAt(t, srcURL, dstURL, 2) // killed again while resuming

			d := openStore(t, dstURL)
			if ok, err := d.Sessions().Exists(ctx, tool.MarkerID); err != nil || !ok {
				t.Fatalf("no progress marker after the kills (%v)", err)
			}
			if _, err := tool.MigrateStores(ctx, openStore(t, "mem://"), d, "another source", tool.Options{}); !errors.Is(err, tool.ErrResumeMismatch) {
				t.Fatalf("resume from another source: %v, want ErrResumeMismatch", err)
			}
			_ = d.Close()

			rep, err := tool.Migrate(ctx, srcURL, dstURL, tool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Resumed || !rep.Verified || rep.Skipped == 0 {
				t.Fatalf("report %+v", rep)
			}
			d = openStore(t, dstURL)
			if bad := summarize(t, d).Diff(want); len(bad) > 0 {
				t.Fatalf("destination differs in %v", bad)
			}
			if ok, _ := d.Sessions().Exists(ctx, tool.MarkerID); ok {
				t.Fatal("marker left after a verified migrate")
			}
		})
	}
}

// failingReader returns an error after n bytes, as a dying disk or a killed
// process would cut an import short.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("read cut short")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	k, err := f.r.Read(p)
	f.n -= k
	return k, err
}

// TestImportInterruptedResumes cuts an import short at several points, then runs it
// again on the same store: it resumes and ends equal to the source.
func TestImportInterruptedResumes(t *testing.T) {
	ctx := testCtx(t)
	src := openStore(t, "mem://")
	buildBrokerStore(t, src)
	pp := &persistence.PersistedPackets{}
	for i := range 3000 {
		pp.QoS12 = append(pp.QoS12, &persistence.PersistedPacket{QoS: 1, PacketID: uint16(i%65000 + 1), Data: fmt.Appendf(nil, "p%d", i)})
	}
	if err := src.Sessions().PacketsStore(ctx, "queued", pp); err != nil {
		t.Fatal(err)
	}
	want := summarize(t, src)
	var arch bytes.Buffer
	if _, err := tool.ExportTo(ctx, src, &arch, tool.Options{}); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, "bolt://"+t.TempDir()+"/d.db?sync=none")
	for _, cut := range []int{arch.Len() / 3, arch.Len() / 2, arch.Len() - 10} {
		_, err := tool.ImportFrom(ctx, &failingReader{r: bytes.NewReader(arch.Bytes()), n: cut}, dst, tool.Options{})
		if err == nil {
			t.Fatalf("import cut at %d bytes succeeded", cut)
		}
	}
	rep, err := tool.ImportFrom(ctx, bytes.NewReader(arch.Bytes()), dst, tool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || !rep.Verified || rep.Skipped == 0 {
		t.Fatalf("report %+v", rep)
	}
	if bad := summarize(t, dst).Diff(want); len(bad) > 0 {
		t.Fatalf("store differs in %v", bad)
	}
}

func TestProgressModes(t *testing.T) {
	for _, m := range []tool.ProgressMode{tool.ProgressBar, tool.ProgressPlain, tool.ProgressAuto, tool.ProgressNone} {
		var buf bytes.Buffer
		p := tool.NewProgress(m, &buf, "test", 10)
		for range 10 {
			p.Add(1, 100)
		}
		p.Done()
		if m != tool.ProgressNone && !strings.Contains(buf.String(), "test") {
			t.Errorf("%s: %q", m, buf.String())
		}
	}
}
