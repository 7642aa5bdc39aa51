// Command demo runs the included MQTT broker (package broker) on a store chosen by
// URL, with every driver of this module: mem, bolt, badger and postgres. It is
// package github.com/mqttstore/mqttstore/demo, whose documentation says
// everything, with those drivers imported.
//
//	go run ./cmd/demo                                   # 127.0.0.1:1883, bbolt file under ./data/
//	go run ./cmd/demo -store badger://./data/badger     # any registered driver
//	go run ./cmd/demo -store 'postgres://u:p@127.0.0.1/db?schema=mqtt'
//	go run ./cmd/demo -metrics 127.0.0.1:9464           # Prometheus metrics at /metrics
//	go run ./cmd/demo -selfcheck -store bolt:///tmp/check.db
//	go run ./cmd/demo -h                                # every flag
package main
