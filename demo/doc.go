// Package demo is the demo MQTT broker program: the included broker (package broker)
// on a store chosen by URL, with an optional Prometheus /metrics endpoint and a
// self-check that proves the broker's state survives a restart. Command
// github.com/mqttstore/mqttstore/cmd/demo is this package with every driver of the
// module imported.
//
// A driver's author runs the demo on their own driver with a main of a few lines:
//
//	package main
//
//	import (
//		"os"
//
//		"github.com/mqttstore/mqttstore/demo"
//		_ "example.com/mydriver" // registers the "mydriver" URL scheme
//	)
//
//	func main() { os.Exit(demo.Main(os.Args[1:])) }
//
// and then runs it with -store mydriver://… (or -selfcheck -store mydriver://…).
// [Command] sets the default store URL and the program's name, and lets a test
// learn the addresses it listens on.
//
// Before it opens the store, the program checks every flag, parses the store URL
// with persistence.NewConnector and binds its listeners: a typo fails fast, before a
// restore could fire wills or expire sessions. Store URLs are printed with their
// passwords hidden (persistence.Redact).
package demo
