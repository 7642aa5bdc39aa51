package kvtest

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// RawEngine is an engine opened with the same options and durability as the driver
// opens it, used directly: the baseline the driver's benchmarks are compared with.
type RawEngine interface {
	// Put writes one key in one write transaction.
	Put(k, v []byte) error
	// PutConcurrent writes one key using the engine's own way of sharing commits
	// among concurrent writers (bbolt Batch; Badger's write loop).
	PutConcurrent(k, v []byte) error
	// PutMany writes keys in one write transaction.
	PutMany(keys, vals [][]byte) error
	// Page calls fn for up to n keys under prefix from start, in one read transaction.
	Page(prefix, start []byte, n int, fn func(k, v []byte)) error
	// DeleteMany deletes keys in one write transaction.
	DeleteMany(keys [][]byte) error
	// Close closes the engine.
	Close() error
}

// The sizes of conformance.RunBench's workloads that the raw baselines mirror.
const (
	rawPayload = 256
	rawItems   = 100_000
	rawPage    = 256  // the page size of persistence/kv's iterations
	rawChunk   = 1000 // fill transaction size, as RunBench's PacketsStore chunks
)

func rawScale(b *testing.B, n int) int {
	v := strings.TrimSpace(os.Getenv(conformance.BenchScaleEnv))
	if v == "" {
		return n
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0) {
		b.Fatalf("%s=%q: want a positive scale factor", conformance.BenchScaleEnv, v)
	}
	return max(int(float64(n)*f), 10)
}

func countName(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// rawValue is the blob persistence/kv stores for RunBench's packets, so that the
// baseline writes the same bytes.
func rawValue(salt byte) []byte {
	d := make([]byte, rawPayload)
	for i := range d {
		d[i] = byte(i*31) ^ salt
	}
	return driver.EncodePacket(nil, &persistence.PersistedPacket{PacketID: 1, QoS: 1, ProtocolVersion: 5, Data: d})
}

// rawKey is a packet key in persistence/kv's layout: tag, queue id, sequence number.
func rawKey(queue, seq uint64) []byte {
	k := make([]byte, 17)
	k[0] = 'p'
	binary.BigEndian.PutUint64(k[1:], queue)
	binary.BigEndian.PutUint64(k[9:], seq)
	return k
}

// RawBench runs, straight through the engine open returns, the workloads of
// conformance.RunBench that the SDK's overhead is judged on, with the same names:
// Append/Writers=1 (one Put per op), Append/Writers=64 (PutConcurrent from 64
// goroutines) and IterateAck (read a page, delete it, until the queue is empty).
func RawBench(b *testing.B, open func(b *testing.B) RawEngine) {
	n := rawScale(b, rawItems)
	b.Run("Append", func(b *testing.B) {
		b.Run("Writers=1", func(b *testing.B) { rawAppend(b, open(b), 1) })
		b.Run("Writers=64", func(b *testing.B) { rawAppend(b, open(b), 64) })
	})
	b.Run("IterateAck/Packets="+countName(n), func(b *testing.B) { rawIterateAck(b, open(b), n) })
}

func rawAppend(b *testing.B, e RawEngine, writers int) {
	defer e.Close()
	b.ReportAllocs()
	vals := make([][]byte, writers)
	for w := range vals {
		vals[w] = rawValue(byte(w))
	}
	var (
		next  atomic.Int64
		seq   atomic.Uint64
		wg    sync.WaitGroup
		first atomic.Value
	)
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				k := rawKey(uint64(w+1), seq.Add(1))
				var err error
				if writers == 1 {
					err = e.Put(k, vals[w])
				} else {
					err = e.PutConcurrent(k, vals[w])
				}
				if err != nil {
					first.CompareAndSwap(nil, fmt.Errorf("put: %w", err))
					next.Store(int64(b.N))
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := first.Load().(error); err != nil {
		b.Fatal(err)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}

func rawIterateAck(b *testing.B, e RawEngine, n int) {
	defer e.Close()
	b.ReportAllocs()
	val := rawValue(0)
	var seq uint64
	queue := uint64(0)
	for b.Loop() {
		b.StopTimer()
		queue++
		for left := n; left > 0; left -= rawChunk {
			var keys, vals [][]byte
			for range min(left, rawChunk) {
				seq++
				keys = append(keys, rawKey(queue, seq))
				vals = append(vals, val)
			}
			if err := e.PutMany(keys, vals); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		prefix := rawKey(queue, 0)[:9]
		start := prefix
		visited := 0
		for {
			var keys [][]byte
			err := e.Page(prefix, start, rawPage, func(k, v []byte) {
				keys = append(keys, append([]byte(nil), k...))
				_ = append([]byte(nil), v...) // the consumer gets its own copy
			})
			if err != nil {
				b.Fatal(err)
			}
			if len(keys) == 0 {
				break
			}
			if err := e.DeleteMany(keys); err != nil {
				b.Fatal(err)
			}
			visited += len(keys)
			start = append(append([]byte(nil), keys[len(keys)-1]...), 0)
		}
		if visited != n {
			b.Fatalf("visited %d packets, want %d", visited, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/packet")
}
