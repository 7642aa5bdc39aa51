package postgres_test

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// BenchmarkQueueHead reads the first 256 packets of one session's queue of 100k
// (scaled by MQTTSTORE_BENCH_SCALE), as a broker's delivery pump does while it
// drains a backlog, right after the queue was written: the table has never been
// analyzed, so the planner believes a session holds a few rows. One op is one
// read of the head; with a bitmap scan and a sort it reads the whole queue.
//
//	go test ./providers/postgres/ -run '^$' -bench QueueHead -benchmem
func BenchmarkQueueHead(b *testing.B) {
	ctx := context.Background()
	n := benchItems(b)
	p := harness("").New(b)
	ss := p.Sessions()
	if err := ss.Create(ctx, "backlog", persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 256)
	var batch persistence.Batch
	for i := 0; i < n; i += 1000 {
		batch.Reset()
		for range min(1000, n-i) {
			batch.PacketAppend("backlog", persistence.ClassQoS12, &persistence.PersistedPacket{PacketID: 1, QoS: 1, ProtocolVersion: 5, Data: data})
		}
		if _, err := ss.Apply(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	const page = 256
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		err := ss.PacketsForEach(ctx, "backlog", persistence.ClassQoS12, func(*persistence.PersistedPacket) (bool, error) {
			got++
			if got == page {
				return false, persistence.ErrStopIteration
			}
			return false, nil
		})
		if err != nil || got != page {
			b.Fatalf("PacketsForEach: %d packets, %v; want %d", got, err, page)
		}
	}
}
