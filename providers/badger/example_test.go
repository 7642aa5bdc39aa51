package badger_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/badger"
)

// A store opened from a typed configuration, without a URL.
func Example() {
	dir, err := os.MkdirTemp("", "badger-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	store, err := persistence.OpenConnector(ctx, &badger.Config{
		Dir:    dir,
		Sync:   badger.SyncAlways,
		Memory: badger.MemoryLow,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	rs := store.Retained()
	if err := rs.Put(ctx, "sensors/1/temp", &persistence.PersistedPacket{QoS: 1, Data: []byte("21.5")}); err != nil {
		log.Fatal(err)
	}
	err = rs.LoadMatching(ctx, []string{"sensors/+/temp"}, func(m *persistence.RetainedMessage) error {
		fmt.Println(m.Topic)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: sensors/1/temp
}

// ParseConfig turns a store URL into the same typed configuration.
func ExampleParseConfig() {
	cfg, err := badger.ParseConfig("badger://?inmemory=true&memory=low")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.InMemory, cfg.Memory, cfg.Sync, cfg.GC)
	// Output: true low always 5m0s
}
