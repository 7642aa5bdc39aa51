package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// The raw pgx baseline: the same rows as conformance.RunBench's Append and
// IterateAck workloads, in the driver's own tables (so the same indexes and foreign
// keys), written with plain autocommit statements on a pgxpool with one connection
// per writer and the same synchronous_commit. The blobs are encoded once up front:
// encoding is part of what the driver's figure pays for. Compare with
// BenchmarkConformance/sync=…/Append and …/IterateAck.
func BenchmarkRaw(b *testing.B) {
	for _, sc := range []string{"on", "off"} {
		b.Run("sync="+sc, func(b *testing.B) {
			b.Run("Append/Writers=1", func(b *testing.B) { rawAppend(b, sc, 1) })
			b.Run("Append/Writers=64", func(b *testing.B) { rawAppend(b, sc, 64) })
			n := benchItems(b)
			b.Run("IterateAck/Packets="+countName(n), func(b *testing.B) { rawIterateAck(b, sc, n) })
		})
	}
}

// benchItems is RunBench's 100k scaled by MQTTSTORE_BENCH_SCALE, as RunBench does.
func benchItems(b *testing.B) int {
	f := 1.0
	if v := os.Getenv(conformance.BenchScaleEnv); v != "" {
		var err error
		if f, err = strconv.ParseFloat(v, 64); err != nil || f <= 0 {
			b.Fatalf("%s=%q", conformance.BenchScaleEnv, v)
		}
	}
	return max(int(100_000*f), 10)
}

// rawSetup creates the driver's tables and sessions ids in a fresh schema, then
// returns a plain pgx pool on that schema.
func rawSetup(b *testing.B, syncCommit string, conns int, ids []string) *pgxpool.Pool {
	ctx := context.Background()
	dsn := pgtest.DSN(b)
	p := openDSN(b, dsn)
	for _, id := range ids {
		if err := p.Sessions().Create(ctx, id, persistence.SessionBase{ProtocolVersion: 5}); err != nil {
			b.Fatal(err)
		}
	}
	_ = p.Close()
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("schema")
	q.Del("schema")
	u.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(conns)
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = syncCommit
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	// Connect every connection now, outside the timed region.
	held := make([]*pgxpool.Conn, conns)
	for i := range held {
		if held[i], err = pool.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range held {
		c.Release()
	}
	return pool
}

func hashID(id string) []byte { h := sha256.Sum256([]byte(id)); return h[:] }

func rawBlob(n int, salt byte) []byte {
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(i*31) ^ salt
	}
	return driver.EncodePacket(nil, &persistence.PersistedPacket{PacketID: 1, QoS: 1, ProtocolVersion: 5, Data: d})
}

const rawInsert = `INSERT INTO mqtt_packets (h, class, seq, blob) VALUES ($1, 2, nextval('mqtt_packet_seq'), $2) RETURNING seq`

func rawAppend(b *testing.B, syncCommit string, writers int) {
	b.ReportAllocs()
	ctx := context.Background()
	ids := make([]string, writers)
	hs := make([][]byte, writers)
	blobs := make([][]byte, writers)
	for w := range writers {
		ids[w] = fmt.Sprintf("raw-writer-%02d", w)
		hs[w] = hashID(ids[w])
		blobs[w] = rawBlob(256, byte(w))
	}
	pool := rawSetup(b, syncCommit, writers, ids)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, writers)
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				var seq int64
				if err := pool.QueryRow(ctx, rawInsert, hs[w], blobs[w]).Scan(&seq); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func rawIterateAck(b *testing.B, syncCommit string, n int) {
	b.ReportAllocs()
	ctx := context.Background()
	const id = "raw-iterate-ack"
	h := hashID(id)
	pool := rawSetup(b, syncCommit, 1, []string{id})
	blob := rawBlob(256, 1)
	for b.Loop() {
		b.StopTimer()
		if _, err := pool.Exec(ctx, `INSERT INTO mqtt_packets (h, class, seq, blob)
			SELECT $1, 2, nextval('mqtt_packet_seq'), $2 FROM generate_series(1, $3)`, h, blob, n); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		visited := 0
		var last, limit int64
		if err := pool.QueryRow(ctx, `SELECT max(seq) FROM mqtt_packets WHERE h = $1 AND class = 2`, h).Scan(&limit); err != nil {
			b.Fatal(err)
		}
		for {
			rows, _ := pool.Query(ctx, `SELECT seq, blob FROM mqtt_packets WHERE h = $1 AND class = 2 AND seq > $2 AND seq <= $3
				ORDER BY seq LIMIT 256`, h, last, limit)
			seqs := make([]int64, 0, 256)
			for rows.Next() {
				var seq int64
				var data []byte
				if err := rows.Scan(&seq, &data); err != nil {
					b.Fatal(err)
				}
				seqs = append(seqs, seq)
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			if len(seqs) == 0 {
				break
			}
			if _, err := pool.Exec(ctx, `DELETE FROM mqtt_packets WHERE h = $1 AND class = 2 AND seq BETWEEN $3 AND $4 AND seq = ANY($2)`,
				h, seqs, seqs[0], seqs[len(seqs)-1]); err != nil {
				b.Fatal(err)
			}
			visited += len(seqs)
			last = seqs[len(seqs)-1]
		}
		if visited != n {
			b.Fatalf("visited %d packets, want %d", visited, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/packet")
}

// countName formats n as RunBench's names do: 100000 → "100k".
func countName(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}
