// Command mqttstore is the operators' tool for mqttstore stores: it inspects and
// checks any store URL, exports and imports archives (ARCHIVE.md), migrates a store
// between any two drivers and compacts embedded stores.
//
//	mqttstore inspect bolt:///var/lib/mqtt/state.db
//	mqttstore check badger:///var/lib/mqtt/state
//	mqttstore check --repair bolt:///var/lib/mqtt/state.db
//	mqttstore export bolt:///var/lib/mqtt/state.db backup.mqs
//	mqttstore import backup.mqs postgres://mqtt@127.0.0.1/mqtt
//	mqttstore migrate bolt:///var/lib/mqtt/state.db postgres://mqtt@127.0.0.1/mqtt
//	mqttstore compact bolt:///var/lib/mqtt/state.db
//
// Stop the broker first: the tool reads and writes stores through the SDK like a
// broker does, and a copy of a store that changes underneath is not a snapshot.
//
// Exit status: 0 success (check: the store is clean), 1 check found problems, 2 an
// error (including a usage error or a failed verification).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/mem"
	_ "github.com/mqttstore/mqttstore/providers/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
