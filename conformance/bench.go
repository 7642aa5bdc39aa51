package conformance

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// BenchScaleEnv names the environment variable that scales the sizes of the
// [RunBench] workloads: MQTTSTORE_BENCH_SCALE=0.01 turns the 100k-item workloads into
// 1k-item ones, so that CI can smoke-test a driver's benchmarks in seconds. The
// default is 1. Sub-benchmark names carry the actual sizes.
const BenchScaleEnv = "MQTTSTORE_BENCH_SCALE"

// Sizes of the standard workloads at scale 1.
const (
	benchPayload     = 256     // bytes per appended / acknowledged packet
	benchSmallData   = 64      // bytes per retained message and per queued packet of a session
	benchItems       = 100_000 // packets, retained messages, sessions
	benchSubsPer     = 5       // subscriptions per session
	benchPacketsPer  = 10      // queued packets per session
	benchSessionsPer = 100     // sessions built per Apply batch
	benchFillChunk   = 1000    // packets per PacketsStore while filling a queue
	benchRetainSites = 100     // first-level fan-out of the retained topic tree
	// benchAppendRound bounds the packets the Append workloads keep: after this many
	// appends the queues are checked and emptied with the timer stopped, so memory
	// stays bounded however large b.N grows.
	benchAppendRound = 1 << 16
)

// RunBench runs the standard workloads every driver is measured on, as
// sub-benchmarks of b:
//
//   - Append/Writers=1 and Append/Writers=64: append one 256-byte packet at a time,
//     from one goroutine or from 64 concurrent goroutines each appending to its own
//     session. Reports ops/s (one op is one PacketAppend).
//   - IterateAck/Packets=100k: a queue of 100k packets, filled with the timer
//     stopped, is iterated with PacketsForEach deleting every packet (the broker
//     acknowledging its backlog). One op is the whole queue; also reports ns/packet.
//   - Retained/Store=100k+LoadWildcard/Filter=Subtree and …/Filter=PlusLevel: 100k
//     retained messages on "site/%d/dev/%d/temp", stored with the timer stopped, then
//     LoadMatching of "site/7/#" (1% of them) or "site/+/dev/3/temp" (0.1%). One op
//     is one LoadMatching.
//   - Sessions/LoadForEach=100k: 100k sessions with 5 subscriptions and 10 queued
//     packets each, built with Apply batches with the timer stopped, then Count and
//     LoadForEach of every session. When the harness can reopen, the store is
//     reopened (timer stopped) before every op, so the load is measured after a
//     restart. One op is Count plus the whole LoadForEach.
//
// Every workload checks its results (counts, order, matches) and fails the benchmark
// on a mismatch, so a broken driver cannot produce a fast number. Sizes scale with
// [BenchScaleEnv]. Call it from a driver's _test.go:
//
//	func BenchmarkConformance(b *testing.B) { conformance.RunBench(b, harness) }
func RunBench(b *testing.B, h Harness) {
	if h.New == nil {
		b.Fatal("conformance: Harness.New is required")
	}
	n := benchSize(b, benchItems)
	b.Run("Append", func(b *testing.B) {
		b.Run("Writers=1", func(b *testing.B) { benchAppend(b, h, 1) })
		b.Run("Writers=64", func(b *testing.B) { benchAppend(b, h, 64) })
	})
	b.Run("IterateAck/Packets="+countName(n), func(b *testing.B) { benchIterateAck(b, h, n) })
	b.Run("Retained/Store="+countName(n)+"+LoadWildcard", func(b *testing.B) { benchRetained(b, h, n) })
	b.Run("Sessions/LoadForEach="+countName(n), func(b *testing.B) { benchSessions(b, h, n) })
}

// benchSize scales n by BenchScaleEnv (at least 10).
func benchSize(b *testing.B, n int) int {
	v := strings.TrimSpace(os.Getenv(BenchScaleEnv))
	if v == "" {
		return n
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0) || f > 100 {
		b.Fatalf("%s=%q: want a positive scale factor such as 0.01 or 1", BenchScaleEnv, v)
	}
	return max(int(float64(n)*f), 10)
}

// countName formats n for a benchmark name: 100000 → "100k", 1000000 → "1M".
func countName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func benchData(n int, salt byte) []byte {
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(i*31) ^ salt
	}
	return d
}

func benchPacket(data []byte) *persistence.PersistedPacket {
	return &persistence.PersistedPacket{PacketID: 1, QoS: 1, ProtocolVersion: 5, Data: data}
}

// benchAppend appends b.N packets from writers goroutines, each to its own session.
func benchAppend(b *testing.B, h Harness, writers int) {
	b.ReportAllocs()
	ctx := context.Background()
	p := h.New(b)
	defer p.Close()
	ss := p.Sessions()
	ids := make([]string, writers)
	pkts := make([]*persistence.PersistedPacket, writers)
	for w := range writers {
		ids[w] = fmt.Sprintf("bench-writer-%02d", w)
		if err := ss.Create(ctx, ids[w], persistence.SessionBase{ProtocolVersion: 5}); err != nil {
			b.Fatalf("Create(%q): %v", ids[w], err)
		}
		pkts[w] = benchPacket(benchData(benchPayload, byte(w)))
	}
	lastSeq := make([]uint64, writers)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, benchAppendRound)
		if err := appendRound(ctx, ss, ids, pkts, lastSeq, n); err != nil {
			b.Fatal(err)
		}
		done += n
		b.StopTimer()
		var total uint64
		for _, id := range ids {
			c, err := ss.PacketCount(ctx, id, persistence.ClassQoS12)
			if err != nil {
				b.Fatalf("PacketCount(%q): %v", id, err)
			}
			total += c
			if err := ss.PacketsDelete(ctx, id, persistence.ClassQoS12); err != nil {
				b.Fatalf("PacketsDelete(%q): %v", id, err)
			}
		}
		if total != uint64(n) {
			b.Fatalf("appended %d packets, but the queues hold %d", n, total)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}

// appendRound makes n appends spread over the writers and checks that each writer's
// sequence numbers increase.
func appendRound(ctx context.Context, ss *persistence.Sessions, ids []string, pkts []*persistence.PersistedPacket, lastSeq []uint64, n int) error {
	if len(ids) == 1 {
		for range n {
			seq, err := ss.PacketAppend(ctx, ids[0], persistence.ClassQoS12, pkts[0])
			if err != nil {
				return fmt.Errorf("PacketAppend(%q): %w", ids[0], err)
			}
			if seq <= lastSeq[0] {
				return fmt.Errorf("PacketAppend(%q) returned seq %d after %d: not increasing", ids[0], seq, lastSeq[0])
			}
			lastSeq[0] = seq
		}
		return nil
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for w := range ids {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				seq, err := ss.PacketAppend(ctx, ids[w], persistence.ClassQoS12, pkts[w])
				if err == nil && seq <= lastSeq[w] {
					err = fmt.Errorf("returned seq %d after %d: not increasing", seq, lastSeq[w])
				}
				if err != nil {
					errOnce.Do(func() { first = fmt.Errorf("PacketAppend(%q): %w", ids[w], err) })
					next.Store(int64(n)) // stop every writer
					return
				}
				lastSeq[w] = seq
			}
		})
	}
	wg.Wait()
	return first
}

// benchIterateAck fills a queue of n packets (timer stopped) and acknowledges all of
// them through PacketsForEach, once per op.
func benchIterateAck(b *testing.B, h Harness, n int) {
	b.ReportAllocs()
	ctx := context.Background()
	p := h.New(b)
	ss := p.Sessions()
	const id = "bench-iterate-ack"
	if err := ss.Create(ctx, id, persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		b.Fatalf("Create: %v", err)
	}
	chunk := make([]*persistence.PersistedPacket, min(n, benchFillChunk))
	for i := range chunk {
		chunk[i] = benchPacket(benchData(benchPayload, byte(i)))
	}
	fill := func() {
		for left := n; left > 0; left -= len(chunk) {
			pp := &persistence.PersistedPackets{QoS12: chunk[:min(left, len(chunk))]}
			if err := ss.PacketsStore(ctx, id, pp); err != nil {
				b.Fatalf("PacketsStore: %v", err)
			}
		}
	}
	for b.Loop() {
		b.StopTimer()
		fill()
		b.StartTimer()
		var (
			visited int
			last    uint64
			order   error
		)
		err := ss.PacketsForEach(ctx, id, persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
			if visited > 0 && p.Seq <= last && order == nil {
				order = fmt.Errorf("packet #%d has seq %d after seq %d: not FIFO", visited, p.Seq, last)
			}
			last = p.Seq
			visited++
			return true, nil
		})
		b.StopTimer()
		switch {
		case err != nil:
			b.Fatalf("PacketsForEach: %v", err)
		case order != nil:
			b.Fatal(order)
		case visited != n:
			b.Fatalf("PacketsForEach visited %d packets, want %d", visited, n)
		}
		if c, err := ss.PacketCount(ctx, id, persistence.ClassQoS12); err != nil || c != 0 {
			b.Fatalf("after acknowledging every packet, PacketCount = %d, %v; want 0, nil", c, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/packet")
}

// benchRetained stores about n retained messages on a topic tree (timer stopped) and
// measures wildcard loads.
func benchRetained(b *testing.B, h Harness, n int) {
	rs, sites, devs := fillRetained(b, h, n)
	b.Run("Filter=Subtree", func(b *testing.B) { benchLoadMatching(b, rs, "site/7/#", devs) })
	b.Run("Filter=PlusLevel", func(b *testing.B) { benchLoadMatching(b, rs, "site/+/dev/3/temp", sites) })
}

// fillRetained stores sites×devs (about n) retained messages on
// "site/%d/dev/%d/temp" in a new store.
func fillRetained(tb testing.TB, h Harness, n int) (rs *persistence.Retained, sites, devs int) {
	ctx := context.Background()
	sites = benchRetainSites
	devs = max(n/sites, 4)
	rs = h.New(tb).Retained()
	msgs := make([]*persistence.RetainedMessage, 0, sites*devs)
	for s := range sites {
		for d := range devs {
			msgs = append(msgs, &persistence.RetainedMessage{
				Topic:  fmt.Sprintf("site/%d/dev/%d/temp", s, d),
				Packet: benchPacket(benchData(benchSmallData, byte(s^d))),
			})
		}
	}
	if err := rs.Store(ctx, msgs); err != nil {
		tb.Fatalf("Retained.Store of %d messages: %v", len(msgs), err)
	}
	if c, err := rs.Count(ctx); err != nil || c != uint64(len(msgs)) {
		tb.Fatalf("Retained.Count after storing %d messages = %d, %v", len(msgs), c, err)
	}
	return rs, sites, devs
}

// benchLoadMatching measures LoadMatching of one filter that matches want messages.
func benchLoadMatching(b *testing.B, rs *persistence.Retained, filter string, want int) {
	b.ReportAllocs()
	ctx := context.Background()
	filters := []string{filter}
	for b.Loop() {
		got := 0
		var bad string
		err := rs.LoadMatching(ctx, filters, func(m *persistence.RetainedMessage) error {
			if bad == "" && !persistence.MatchTopic(filter, m.Topic) {
				bad = m.Topic
			}
			got++
			return nil
		})
		if err != nil || bad != "" || got != want {
			b.Fatalf("LoadMatching(%q): %d messages, error %v, non-matching topic %q; want %d messages",
				filter, got, err, bad, want)
		}
	}
	b.ReportMetric(float64(want), "msgs/op")
}

// benchSessions builds n sessions with subscriptions and queued packets (timer
// stopped) and measures Count plus LoadForEach, after a reopen when the harness can.
func benchSessions(b *testing.B, h Harness, n int) {
	b.ReportAllocs()
	ctx := context.Background()
	p := h.New(b)
	ss := p.Sessions()
	id := func(i int) string { return fmt.Sprintf("bench-client-%07d", i) }
	data := benchData(benchSmallData, 7)
	base := persistence.SessionBase{ProtocolVersion: 5}
	var batch persistence.Batch
	for start := 0; start < n; start += benchSessionsPer {
		batch.Reset()
		for i := start; i < min(start+benchSessionsPer, n); i++ {
			sid := id(i)
			batch.Create(sid, base)
			for s := range benchSubsPer {
				batch.SubscriptionStore(sid, persistence.Subscription{
					Filter: fmt.Sprintf("site/%d/dev/+/temp/%d", i%100, s), QoS: 1, ID: uint32(s + 1),
				})
			}
			for range benchPacketsPer {
				batch.PacketAppend(sid, persistence.ClassQoS12, benchPacket(data))
			}
		}
		if _, err := ss.Apply(ctx, &batch); err != nil {
			b.Fatalf("Apply (building sessions %d..): %v", start, err)
		}
	}
	if c, err := ss.PacketCount(ctx, id(n-1), persistence.ClassQoS12); err != nil || c != benchPacketsPer {
		b.Fatalf("PacketCount of the last session built = %d, %v; want %d", c, err, benchPacketsPer)
	}
	for b.Loop() {
		if h.Reopen != nil {
			b.StopTimer()
			p = h.Reopen(b, p)
			ss = p.Sessions()
			b.StartTimer()
		}
		count, err := ss.Count(ctx)
		if err != nil {
			b.Fatalf("Count: %v", err)
		}
		sessions, subs := 0, 0
		err = ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
			sessions++
			subs += len(ls.Subscriptions)
			return nil
		})
		if err != nil || count != uint64(n) || sessions != n || subs != n*benchSubsPer {
			b.Fatalf("Count = %d, LoadForEach visited %d sessions with %d subscriptions, error %v; want %d, %d, %d",
				count, sessions, subs, err, n, n, n*benchSubsPer)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/session")
}
