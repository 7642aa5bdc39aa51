// Command mochistore starts Mochi MQTT (github.com/mochi-mqtt/server/v2) on a
// loopback port with the mqttstore storage hook (adapters/mochi) on any store URL,
// so bench/run.sh can measure Mochi on our drivers beside Mochi's own hooks
// (bench/mochi) with the same load tool.
//
//	go run . -listen 127.0.0.1:1886 -store 'bolt:///tmp/mochi.db?sync=always'
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	mochistore "github.com/mqttstore/mqttstore/adapters/mochi"
	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/mem"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1886", "loopback address to listen on")
	store := flag.String("store", "bolt://mochi.db?sync=always", "mqttstore store URL")
	maxInflight := flag.Int("max-inflight", 0, "if > 0, Mochi's per-client inflight/queue capacity (MaximumInflight)")
	flag.Parse()
	if err := run(*listen, *store, *maxInflight); err != nil {
		fmt.Fprintln(os.Stderr, "mochistore:", err)
		os.Exit(1)
	}
}

func run(listen, store string, maxInflight int) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback address %q", listen)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	caps := mqtt.NewDefaultServerCapabilities()
	if maxInflight > 0 {
		caps.MaximumInflight = uint16(min(maxInflight, 65535))
		caps.MaximumClientWritesPending = int32(min(maxInflight, 1<<30))
	}
	server := mqtt.New(&mqtt.Options{InlineClient: false, Logger: logger, Capabilities: caps})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := server.AddHook(new(mochistore.Hook), &mochistore.Options{URL: store, Server: server}); err != nil {
		return err
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: listen})); err != nil {
		return err
	}
	if err := server.Serve(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mochistore: listening on %s with store %s\n", listen, store)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return server.Close()
}
