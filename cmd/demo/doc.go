// Command demo runs the included MQTT broker (package broker) on a store chosen by
// URL, and can prove end to end that the broker's state survives a restart.
//
//	go run ./cmd/demo                                   # 127.0.0.1:1883, bbolt file under ./data/
//	go run ./cmd/demo -store badger://./data/badger     # any registered driver
//	go run ./cmd/demo -store 'postgres://u:p@127.0.0.1/db?schema=mqtt'
//	go run ./cmd/demo -selfcheck -store bolt:///tmp/check.db
//	echo pw | go run ./cmd/demo passwd ./data/passwd alice    # add a user (bcrypt)
//	go run ./cmd/demo -password-file ./data/passwd -acl-file ./data/acl -ws-listen 127.0.0.1:8080
//
// Access control (password and ACL files, reloaded on SIGHUP), the WebSocket
// listener, $SYS and the keepalive cap are set by the flags in flags_access.go.
//
// It logs with log/slog which driver it opened, the address it listens on and what
// the broker restored (sessions, subscriptions, queued and in-flight messages,
// retained messages, wills fired, sessions expired). SIGINT or SIGTERM shut it down
// cleanly: the broker first (Shutdown), then the store (Close).
//
// -selfcheck runs the whole story with real clients (github.com/eclipse/paho.mqtt.golang):
// a persistent subscriber subscribes at QoS 1 and disconnects, messages are published,
// the broker is stopped, the store closed and reopened, a new broker started on it, and
// the subscriber reconnects and must receive every message. Each step is printed; a
// missing message makes the command exit with status 1. mem:// cannot survive closing
// the store, so for mem the restart keeps the open store and says so.
//
// It imports the broker, the persistence package, every driver (blank imports only,
// so every URL scheme works; it must not use a driver's own API, only
// persistence.Open) and paho for the self-check. It must not import the conformance
// suite or anything under bench/. Nothing imports it.
package main
