// Command mochi starts Mochi MQTT (github.com/mochi-mqtt/server/v2) on a loopback port
// with one of its storage hooks, so bench/run.sh can drive it with the same load tool
// as our broker. It lives in its own module so the main module never depends on Mochi.
//
//	go run . -listen 127.0.0.1:1885 -storage bolt -path /tmp/mochi.db
//
// Durability, as Mochi's hooks do it (see bench/README.md): the bolt hook writes each
// event in its own bbolt transaction, which bbolt fsyncs on commit; the badger hook
// opens Badger with its defaults, where SyncWrites is false (the OS decides when the
// value log reaches the disk). -sync makes the badger hook sync every write.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	badgerdb "github.com/dgraph-io/badger/v4"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/badger"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1885", "loopback address to listen on")
	storage := flag.String("storage", "bolt", "storage hook: bolt, badger or none")
	path := flag.String("path", "mochi.db", "bolt file or badger directory")
	syncWrites := flag.Bool("sync", false, "badger only: SyncWrites=true (fsync every write)")
	maxInflight := flag.Int("max-inflight", 0, "if > 0, Mochi's per-client inflight/queue capacity (MaximumInflight)")
	flag.Parse()
	if err := run(*listen, *storage, *path, *syncWrites, *maxInflight); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
}

func run(listen, storage, path string, syncWrites bool, maxInflight int) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		// The benchmark peers run without authentication: never expose them.
		return fmt.Errorf("refusing non-loopback address %q", listen)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := &mqtt.Options{InlineClient: false, Logger: logger}
	caps := mqtt.NewDefaultServerCapabilities()
	// Mochi queues messages for offline persistent sessions as inflight packets,
	// bounded by MaximumInflight (default 1024 per client); the backlog scenario
	// needs more, so run.sh raises it.
	if maxInflight > 0 {
		caps.MaximumInflight = uint16(min(maxInflight, 65535))
		caps.MaximumClientWritesPending = int32(min(maxInflight, 1<<30))
	}
	opts.Capabilities = caps
	server := mqtt.New(opts)
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	switch storage {
	case "bolt":
		err = server.AddHook(new(bolt.Hook), &bolt.Options{Path: path})
	case "badger":
		o := badgerdb.DefaultOptions(path)
		o.SyncWrites = syncWrites
		err = server.AddHook(new(badger.Hook), &badger.Options{Path: path, Options: &o})
	case "none":
	default:
		err = fmt.Errorf("unknown storage %q", storage)
	}
	if err != nil {
		return err
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: listen})); err != nil {
		return err
	}
	if err := server.Serve(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mochi: listening on %s with storage %s at %s\n", listen, storage, path)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return server.Close()
}
