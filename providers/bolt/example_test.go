package bolt_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/bolt"
)

// A store opened from a typed configuration, without a URL.
func Example() {
	dir, err := os.MkdirTemp("", "bolt-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	store, err := persistence.OpenConnector(ctx, &bolt.Config{
		Path: filepath.Join(dir, "state.db"),
		Sync: bolt.SyncAlways,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ss := store.Sessions()
	if err := ss.Create(ctx, "client-1", persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		log.Fatal(err)
	}
	seq, err := ss.PacketAppend(ctx, "client-1", persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte("hello")})
	if err != nil {
		log.Fatal(err)
	}
	n, err := ss.PacketCount(ctx, "client-1", persistence.ClassQoS12)
	if err != nil {
		log.Fatal(err)
	}
	info, err := store.Info(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Driver, seq > 0, n)
	// Output: bolt true 1
}

// ParseConfig turns a store URL into the same typed configuration.
func ExampleParseConfig() {
	cfg, err := bolt.ParseConfig("bolt:///var/lib/mqtt/state.db?sync=batch")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Path, cfg.Sync, cfg.Timeout)
	// Output: /var/lib/mqtt/state.db batch 2s
}
