package bolt_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/internal/powerloss"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/bolt"
)

// powerLoss is a crash harness whose store lives on a powerloss.Disk (a FUSE mount
// that keeps unsynced writes apart): after each SIGKILL the power is cut too, so
// every byte bbolt wrote but did not fsync is gone before the store is reopened.
// open, when not nil, opens the store's file path instead of the bolt URL.
func powerLoss(cut bool, open func(ctx context.Context, path string) (*persistence.Store, error)) (conformance.CrashHarness, **powerloss.Disk) {
	disk := new(*powerloss.Disk)
	h := conformance.CrashHarness{
		// Mounting happens in the parent only (NewTarget never runs in the child).
		NewTarget: func(t testing.TB) string {
			*disk = powerloss.Mount(t)
			path := filepath.Join((*disk).Dir(), "state.db")
			if open != nil {
				return path
			}
			return "bolt://" + path + "?sync=always"
		},
		Open: open,
	}
	if cut {
		h.AfterKill = func(t testing.TB, _ string) { (*disk).Cut(t) }
	}
	return h, disk
}

// TestPowerLoss cuts the power after every kill: bolt with sync=always loses
// nothing it acknowledged, and a bolt driver that never fsyncs (the mutant) is
// caught, while the SIGKILL alone cannot catch it.
func TestPowerLoss(t *testing.T) {
	t.Run("sync=always", func(t *testing.T) {
		h, disk := powerLoss(true, nil)
		conformance.RunCrash(t, h)
		st := (*disk).Stats(t)
		t.Logf("power cuts: %d; %d writes, %d fsyncs; %d unsynced bytes dropped", st.Cuts, st.Writes, st.Syncs, st.LostBytes)
		if st.Cuts < 20 || st.Syncs == 0 {
			t.Fatalf("the file system saw %d cuts and %d fsyncs: the test did not test", st.Cuts, st.Syncs)
		}
	})
	mutant := func(ctx context.Context, path string) (*persistence.Store, error) {
		return persistence.OpenConnector(ctx, bolt.NoSyncMutant(path))
	}
	t.Run("mutant=nosync", func(t *testing.T) {
		h, disk := powerLoss(true, mutant)
		_, err := conformance.CrashRun(t, h)
		if err == nil {
			t.Fatalf("the power-loss test passed a bolt driver that never fsyncs (%+v)", (*disk).Stats(t))
		}
		// bbolt commits a transaction whole, so what the power cut takes shows
		// as acknowledged writes lost or, when everything it took lies under a
		// delete that was in flight, as that delete half-applied. Anything
		// else (an error opening the store, a key never written) is not this
		// mutant's doing.
		first, _, _ := strings.Cut(err.Error(), "\n")
		if !strings.Contains(first, "lost an acknowledged") && !strings.Contains(first, "half-applied the operation in flight") {
			t.Fatalf("the mutant failed, but not with a lost write or a half-applied delete first:\n%v", err)
		}
		t.Logf("caught, as it must be: %s", first)
	})
	t.Run("mutant=nosync,kill-only", func(t *testing.T) {
		// The control: the same mutant under SIGKILL alone keeps everything, which
		// is why the power cut is needed.
		h, _ := powerLoss(false, mutant)
		h.Kills = 20
		if _, err := conformance.CrashRun(t, h); err != nil {
			t.Fatalf("under SIGKILL alone the mutant lost writes, so the control is wrong:\n%v", err)
		}
	})
}
