package main

import (
	"slices"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// TestDriversRegistered checks that the command offers every driver of the module.
func TestDriversRegistered(t *testing.T) {
	got := persistence.Drivers()
	for _, want := range []string{"badger", "bolt", "mem", "postgres"} {
		if !slices.Contains(got, want) {
			t.Errorf("driver %s is not registered; registered: %v", want, got)
		}
	}
}
