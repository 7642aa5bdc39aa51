package demo

import (
	"io"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
)

// TestLimitFlags: the memory and connection flags reach broker.Limits, their
// defaults are the broker's, and negative byte budgets are usage errors.
func TestLimitFlags(t *testing.T) {
	cfg, err := (&Command{}).parse([]string{"-store", "mem://"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	def := cfg.limits()
	if def.MaxConnQueueBytes != broker.DefaultMaxConnQueueBytes || def.MaxBufferedBytes != broker.DefaultMaxBufferedBytes ||
		def.BackpressureWait != broker.DefaultBackpressureWait || def.MaxConnections != broker.DefaultMaxConnections ||
		def.MaxConnectionRate != broker.DefaultMaxConnectionRate || def.IdleTimeout != broker.DefaultIdleTimeout || cfg.Quarantine {
		t.Errorf("defaults: %+v quarantine %v", def, cfg.Quarantine)
	}
	cfg, err = (&Command{}).parse([]string{"-store", "mem://", "-max-conn-queue-bytes", "1000", "-max-buffered-bytes", "2000",
		"-backpressure-wait", "-1s", "-max-connections", "7", "-max-connection-rate", "-1", "-idle-timeout", "90s", "-quarantine"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.limits()
	want := broker.Limits{MaxConnQueueBytes: 1000, MaxBufferedBytes: 2000, BackpressureWait: -time.Second,
		MaxConnections: 7, MaxConnectionRate: -1, IdleTimeout: 90 * time.Second}
	if got.MaxConnQueueBytes != want.MaxConnQueueBytes || got.MaxBufferedBytes != want.MaxBufferedBytes ||
		got.BackpressureWait != want.BackpressureWait || got.MaxConnections != want.MaxConnections ||
		got.MaxConnectionRate != want.MaxConnectionRate || got.IdleTimeout != want.IdleTimeout || !cfg.Quarantine {
		t.Errorf("flags: %+v quarantine %v", got, cfg.Quarantine)
	}
	for _, f := range []string{"-max-conn-queue-bytes", "-max-buffered-bytes"} {
		if code, _, stderr := runCmd(t, &Command{}, "-store", "mem://", f, "-1"); code != 2 {
			t.Errorf("%s -1: status %d\n%s", f, code, stderr)
		}
	}
}
