package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

// BenchmarkSessionsLoad measures what a broker's restore reads first: Count and
// LoadForEach of every session (100k, scaled by MQTTSTORE_BENCH_SCALE, each with
// 5 subscriptions and 10 queued packets of 64 bytes, the workload of the
// conformance suite's Sessions benchmark), through persistence.Store after a reopen, beside a
// baseline in the same run and on the same rows: a plain count(*) and a plain
// SELECT of every session row and every subscription row on a freshly opened
// pool, scanned into byte slices and not decoded. One op is the whole load.
//
//	go test ./providers/postgres/ -run '^$' -bench SessionsLoad -benchmem -benchtime=5x
func BenchmarkSessionsLoad(b *testing.B) {
	ctx := context.Background()
	n := benchItems(b)
	h := harness("")
	p := h.New(b)
	ss := p.Sessions()
	base := persistence.SessionBase{ProtocolVersion: 5}
	id := func(i int) string { return fmt.Sprintf("bench-client-%07d", i) }
	const subsPer, packetsPer = 5, 10
	data := make([]byte, 64)
	for start := 0; start < n; start += 100 {
		var batch persistence.Batch
		for i := start; i < min(start+100, n); i++ {
			batch.Create(id(i), base)
			for s := range subsPer {
				batch.SubscriptionStore(id(i), persistence.Subscription{
					Filter: fmt.Sprintf("site/%d/dev/+/temp/%d", i%100, s), QoS: 1, ID: uint32(s + 1)})
			}
			for range packetsPer {
				batch.PacketAppend(id(i), persistence.ClassQoS12,
					&persistence.PersistedPacket{PacketID: 1, QoS: 1, ProtocolVersion: 5, Data: data})
			}
		}
		if _, err := ss.Apply(ctx, &batch); err != nil {
			b.Fatalf("Apply (building sessions %d..): %v", start, err)
		}
	}
	// The stores are reopened on the parent benchmark, which outlives both runs.
	reopen := func() { p = h.Reopen(b, p) }
	b.Run("Store/Sessions="+countName(n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			reopen()
			ss = p.Sessions()
			b.StartTimer()
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
			if err != nil || count != uint64(n) || sessions != n || subs != n*subsPer {
				b.Fatalf("Count = %d, LoadForEach visited %d sessions with %d subscriptions, error %v; want %d, %d, %d",
					count, sessions, subs, err, n, n, n*subsPer)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/session")
	})
	b.Run("RawSelect/Sessions="+countName(n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			reopen()
			pool := postgres.Pool(p)
			b.StartTimer()
			var count int64
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM mqtt_sessions`).Scan(&count); err != nil {
				b.Fatal(err)
			}
			rows, err := pool.Query(ctx, `SELECT h, id, base, state, expiry FROM mqtt_sessions`)
			if err != nil {
				b.Fatal(err)
			}
			sessions := 0
			for rows.Next() {
				var h, id, base, state, expiry []byte
				if err := rows.Scan(&h, &id, &base, &state, &expiry); err != nil {
					b.Fatal(err)
				}
				sessions++
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			if rows, err = pool.Query(ctx, `SELECT h, blob FROM mqtt_subscriptions`); err != nil {
				b.Fatal(err)
			}
			subs := 0
			for rows.Next() {
				var h, blob []byte
				if err := rows.Scan(&h, &blob); err != nil {
					b.Fatal(err)
				}
				subs++
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			if count != int64(n) || sessions != n || subs != n*subsPer {
				b.Fatalf("count %d, %d session rows, %d subscription rows; want %d, %d, %d", count, sessions, subs, n, n, n*subsPer)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/session")
	})
}
