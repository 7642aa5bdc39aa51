package kvtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// The kill test. A child process (the test binary re-executed with
// -test.run=^TestKillChild$) opens a store with sync=always and runs killWriters
// writers, each owning one session and a few retained topics. Each writer makes a
// deterministic sequence of operations (create, append, update, delete, retained
// put, subscription add) and prints "writer op seq" after each one is acknowledged.
// The parent SIGKILLs the child at a random moment, reopens the store and checks,
// writer by writer, that what is stored equals the state after every acknowledged
// operation, or after those plus the one that was in flight (all of it or nothing of
// it), and that sequence numbers keep increasing.

const (
	killDSNEnv   = "MQTTSTORE_KILL_DSN"
	killWriters  = 4
	killTopics   = 7
	killFilters  = 11
	killChildMax = 60 * time.Second // a child the parent lost stops by itself
)

type killOpKind byte

const (
	opCreate killOpKind = iota + 1
	opAppend
	opUpdate
	opDelete
	opRetain
	opSubscribe
)

type killOp struct {
	kind  killOpKind
	pkt   int // index in the model's packets (update, delete)
	data  string
	topic string
	sub   persistence.Subscription
}

// writerModel is what one writer's session and topics hold.
type writerModel struct {
	exists  bool
	pkts    []modelPacket // FIFO
	subs    map[string]persistence.Subscription
	ret     map[string]string
	appends int
}

type modelPacket struct {
	n    int // append number: the child maps it to the sequence number
	data string
}

func newWriterModel() *writerModel {
	return &writerModel{subs: map[string]persistence.Subscription{}, ret: map[string]string{}}
}

func (m *writerModel) clone() *writerModel {
	c := *m
	c.pkts = slices.Clone(m.pkts)
	c.subs = maps.Clone(m.subs)
	c.ret = maps.Clone(m.ret)
	return &c
}

func sessionID(w int) string { return fmt.Sprintf("kill\x00writer:%d", w) }

// nextOp is operation k of writer w, given the model before it.
func nextOp(w, k int, m *writerModel) killOp {
	if k == 0 {
		return killOp{kind: opCreate}
	}
	data := fmt.Sprintf("w%d-op%d-%s", w, k, strings.Repeat("x", k%97))
	switch k % 5 {
	case 1:
		if len(m.pkts) > 0 {
			return killOp{kind: opUpdate, pkt: len(m.pkts) / 2, data: data + "-updated"}
		}
	case 2:
		if len(m.pkts) >= 3 {
			return killOp{kind: opDelete, pkt: 0}
		}
	case 3:
		return killOp{kind: opRetain, topic: fmt.Sprintf("kill/%d/%d", w, k%killTopics), data: data}
	case 4:
		return killOp{kind: opSubscribe, sub: persistence.Subscription{
			Filter: fmt.Sprintf("kill/%d/+/%d", w, k%killFilters), QoS: uint8(k % 3), ID: uint32(k),
		}}
	}
	return killOp{kind: opAppend, data: data}
}

func (m *writerModel) apply(op killOp) {
	switch op.kind {
	case opCreate:
		m.exists = true
	case opAppend:
		m.pkts = append(m.pkts, modelPacket{n: m.appends, data: op.data})
		m.appends++
	case opUpdate:
		m.pkts[op.pkt].data = op.data
	case opDelete:
		m.pkts = slices.Delete(m.pkts, op.pkt, op.pkt+1)
	case opRetain:
		m.ret[op.topic] = op.data
	case opSubscribe:
		m.subs[op.sub.Filter] = op.sub
	}
}

// KillChild is the child side of [Kill]. Call it from a test named TestKillChild;
// it returns at once unless the parent started this process.
func KillChild(t *testing.T) {
	dsn := os.Getenv(killDSNEnv)
	if dsn == "" {
		return // an ordinary test run: the kill test starts this side itself
	}
	ctx, cancel := context.WithTimeout(context.Background(), killChildMax)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: open: %v\n", err)
		os.Exit(3)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range killWriters {
		wg.Go(func() {
			m := newWriterModel()
			seqs := map[int]uint64{}
			for k := 0; ctx.Err() == nil; k++ {
				op := nextOp(w, k, m)
				seq, err := doOp(ctx, p, w, op, m, seqs)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					fmt.Fprintf(os.Stderr, "child: writer %d op %d: %v\n", w, k, err)
					os.Exit(3)
				}
				m.apply(op)
				out.Lock()
				// One write per line, so a kill never leaves half a line behind
				// another writer's line.
				fmt.Fprintf(os.Stdout, "%d %d %d\n", w, k, seq)
				out.Unlock()
			}
		})
	}
	wg.Wait()
	_ = p.Close()
	os.Exit(0)
}

func doOp(ctx context.Context, p *persistence.Store, w int, op killOp, m *writerModel, seqs map[int]uint64) (uint64, error) {
	ss, id := p.Sessions(), sessionID(w)
	switch op.kind {
	case opCreate:
		return 0, ss.Create(ctx, id, persistence.SessionBase{ProtocolVersion: 5})
	case opAppend:
		seq, err := ss.PacketAppend(ctx, id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, ProtocolVersion: 5, Data: []byte(op.data)})
		if err == nil {
			seqs[m.appends] = seq
		}
		return seq, err
	case opUpdate:
		seq := seqs[m.pkts[op.pkt].n]
		return seq, ss.PacketUpdate(ctx, id, persistence.ClassQoS12, &persistence.PersistedPacket{Seq: seq, QoS: 1, ProtocolVersion: 5, Data: []byte(op.data)})
	case opDelete:
		seq := seqs[m.pkts[op.pkt].n]
		return seq, ss.PacketDelete(ctx, id, persistence.ClassQoS12, seq)
	case opRetain:
		return 0, p.Retained().Put(ctx, op.topic, &persistence.PersistedPacket{QoS: 1, ProtocolVersion: 5, Data: []byte(op.data)})
	case opSubscribe:
		return 0, ss.SubscriptionsStore(ctx, id, op.sub)
	}
	return 0, fmt.Errorf("unknown op %d", op.kind)
}

// Kill runs the parent side: kills times, a child writes to a fresh store made by
// newURL(dir) (which must ask for sync=always) and is SIGKILLed after a random delay
// of up to maxDelay from its first acknowledgement; then the store is reopened and
// checked. The driver's test binary must have a TestKillChild that calls
// [KillChild].
func Kill(t *testing.T, newURL func(dir string) string, kills int, maxDelay time.Duration) {
	total := 0
	for i := range kills {
		for _, a := range killOnce(t, newURL(t.TempDir()), i, maxDelay) {
			total += a + 1
		}
	}
	t.Logf("%d kills, %d acknowledged operations checked", kills, total)
}

// killOnce runs one child, kills it and checks the store. It returns the last
// acknowledged op per writer.
func killOnce(t *testing.T, dsn string, round int, maxDelay time.Duration) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), killChildMax)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDSNEnv+"="+dsn)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var (
		lines    []string
		first    = make(chan struct{})
		readDone = make(chan error, 1)
	)
	go func() {
		r := bufio.NewReader(stdout)
		once := sync.Once{}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				// A line without its newline was cut by the kill: it is not an
				// acknowledgement the parent may count on.
				if errors.Is(err, io.EOF) {
					err = nil
				}
				once.Do(func() { close(first) })
				readDone <- err
				return
			}
			lines = append(lines, strings.TrimSuffix(line, "\n"))
			once.Do(func() { close(first) })
		}
	}()
	select {
	case <-first:
	case <-ctx.Done():
		t.Fatalf("round %d: child acknowledged nothing: %s", round, stderr.String())
	}
	select {
	case <-time.After(time.Duration(rand.Int64N(int64(maxDelay)))):
	case <-ctx.Done():
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("round %d: kill child: %v (stderr: %s)", round, err, stderr.String())
	}
	if err := <-readDone; err != nil {
		t.Fatalf("round %d: read child output: %v", round, err)
	}
	werr := cmd.Wait()
	if !isKilled(werr) {
		t.Fatalf("round %d: child ended by itself (%v) before the kill: %s", round, werr, stderr.String())
	}

	acked := make([]int, killWriters)
	for i := range acked {
		acked[i] = -1
	}
	var maxSeq uint64
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("round %d: bad child line %q", round, l)
		}
		w, _ := strconv.Atoi(f[0])
		k, _ := strconv.Atoi(f[1])
		seq, _ := strconv.ParseUint(f[2], 10, 64)
		if w < 0 || w >= killWriters || k != acked[w]+1 {
			t.Fatalf("round %d: child line %q out of order (writer's last op %d)", round, l, acked[w])
		}
		acked[w] = k
		maxSeq = max(maxSeq, seq)
	}
	checkKilled(t, ctx, dsn, round, acked, maxSeq)
	return acked
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// observed is what the store holds for one writer, in the model's terms.
type observed struct {
	exists bool
	pkts   []string
	subs   map[string]persistence.Subscription
	ret    map[string]string
}

func (o *observed) matches(m *writerModel) bool {
	if o.exists != m.exists {
		return false
	}
	data := make([]string, len(m.pkts))
	for i, p := range m.pkts {
		data[i] = p.data
	}
	return slices.Equal(o.pkts, data) && maps.Equal(o.subs, m.subs) && maps.Equal(o.ret, m.ret)
}

func observe(ctx context.Context, p *persistence.Store, w int) (*observed, error) {
	ss, id := p.Sessions(), sessionID(w)
	o := &observed{subs: map[string]persistence.Subscription{}, ret: map[string]string{}}
	for k := range killTopics {
		topic := fmt.Sprintf("kill/%d/%d", w, k)
		pk, err := p.Retained().Get(ctx, topic)
		switch {
		case err == nil:
			o.ret[topic] = string(pk.Data)
		case !errors.Is(err, persistence.ErrNotFound):
			return nil, fmt.Errorf("retained %q: %w", topic, err)
		}
	}
	ok, err := ss.Exists(ctx, id)
	if err != nil || !ok {
		return o, err
	}
	o.exists = true
	err = ss.PacketsForEach(ctx, id, persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		o.pkts = append(o.pkts, string(pk.Data))
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("packets: %w", err)
	}
	n, err := ss.PacketCount(ctx, id, persistence.ClassQoS12)
	if err != nil || n != uint64(len(o.pkts)) {
		return nil, fmt.Errorf("PacketCount = %d, %v; iteration saw %d packets", n, err, len(o.pkts))
	}
	subs, err := ss.SubscriptionsLoad(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	for _, s := range subs {
		o.subs[s.Filter] = s
	}
	return o, nil
}

// checkKilled reopens the store and compares it with the acknowledged operations.
func checkKilled(t *testing.T, ctx context.Context, dsn string, round int, acked []int, maxSeq uint64) {
	t.Helper()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("round %d: reopen after kill: %v", round, err)
	}
	defer p.Close()
	if _, err := p.Info(ctx); err != nil {
		t.Fatalf("round %d: GetInfo after kill: %v", round, err)
	}
	var sessions, retained uint64
	for w := range killWriters {
		m := newWriterModel()
		for k := 0; k <= acked[w]; k++ {
			m.apply(nextOp(w, k, m))
		}
		inFlight := m.clone()
		inFlight.apply(nextOp(w, acked[w]+1, inFlight))
		o, err := observe(ctx, p, w)
		if err != nil {
			t.Fatalf("round %d: writer %d: %v", round, w, err)
		}
		if !o.matches(m) && !o.matches(inFlight) {
			t.Fatalf("round %d: writer %d: store holds %+v;\nwant the state after op %d: %+v\nor after op %d: %+v",
				round, w, o, acked[w], m, acked[w]+1, inFlight)
		}
		if o.exists {
			sessions++
		}
		retained += uint64(len(o.ret))
	}
	if n, err := p.Sessions().Count(ctx); err != nil || n != sessions {
		t.Fatalf("round %d: session Count = %d, %v; want %d", round, n, err, sessions)
	}
	if n, err := p.Retained().Count(ctx); err != nil || n != retained {
		t.Fatalf("round %d: retained Count = %d, %v; want %d", round, n, err, retained)
	}
	// Sequence numbers are never reused, not even those of a commit the kill cut off.
	id := sessionID(0)
	if ok, _ := p.Sessions().Exists(ctx, id); ok {
		seq, err := p.Sessions().PacketAppend(ctx, id, persistence.ClassQoS0, &persistence.PersistedPacket{Data: []byte("after")})
		if err != nil || seq <= maxSeq {
			t.Fatalf("round %d: append after reopen = seq %d, %v; want a seq above %d", round, seq, err, maxSeq)
		}
	}
}
