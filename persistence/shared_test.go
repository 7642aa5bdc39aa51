package persistence

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// recSharer is a recConn that can be shared: it records the shared-store calls
// that reach it and the operations of each Apply.
type recSharer struct {
	recConn
	ops [][]driver.Op
}

var _ driver.Sharer = (*recSharer)(nil)

func (c *recSharer) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	c.mu.Lock()
	c.ops = append(c.ops, slices.Clone(ops))
	c.mu.Unlock()
	return c.recConn.Apply(ctx, ops)
}
func (c *recSharer) RenewLease(_ context.Context, node string, ttl time.Duration) (Lease, error) {
	return Lease{Node: node, Expires: time.Unix(0, 0).Add(ttl)}, c.rec("RenewLease")
}
func (c *recSharer) Leave(context.Context, string) error { return c.rec("Leave") }
func (c *recSharer) LeasesForEach(_ context.Context, fn func(Lease) error) error {
	if err := c.rec("LeasesForEach"); err != nil {
		return err
	}
	for _, n := range []string{"a", "b"} {
		if err := fn(Lease{Node: n}); err != nil {
			return err
		}
	}
	return nil
}
func (c *recSharer) Claim(_ context.Context, id, node string, takeover bool) (Ownership, error) {
	name := "Claim"
	if takeover {
		name = "Takeover"
	}
	return Ownership{ID: id, Node: node, Epoch: 7}, c.rec(name)
}
func (c *recSharer) Release(context.Context, Ownership) error { return c.rec("Release") }
func (c *recSharer) Owner(_ context.Context, id string) (Ownership, error) {
	return Ownership{ID: id, Node: "a", Epoch: 7}, c.rec("Owner")
}
func (c *recSharer) OwnedForEach(_ context.Context, node string, fn func(Ownership) error) error {
	if err := c.rec("OwnedForEach"); err != nil {
		return err
	}
	for _, id := range []string{"s1", "s2"} {
		if err := fn(Ownership{ID: id, Node: node, Epoch: 7}); err != nil {
			return err
		}
	}
	return nil
}

// sharedCalls are every shared-store call of the Store with valid arguments.
func sharedCalls(s *Store) map[string]func(ctx context.Context) error {
	o := Ownership{ID: "s", Node: "n", Epoch: 7}
	return map[string]func(ctx context.Context) error{
		"RenewLease":    func(ctx context.Context) error { _, err := s.Nodes().Renew(ctx, "n", time.Second); return err },
		"Leave":         func(ctx context.Context) error { return s.Nodes().Leave(ctx, "n") },
		"LeasesForEach": func(ctx context.Context) error { return s.Nodes().ForEach(ctx, func(Lease) error { return nil }) },
		"Claim":         func(ctx context.Context) error { _, err := s.Sessions().Claim(ctx, "s", "n"); return err },
		"Takeover":      func(ctx context.Context) error { _, err := s.Sessions().Takeover(ctx, "s", "n"); return err },
		"Release":       func(ctx context.Context) error { return s.Sessions().Release(ctx, o) },
		"Owner":         func(ctx context.Context) error { _, err := s.Sessions().Owner(ctx, "s"); return err },
		"OwnedForEach": func(ctx context.Context) error {
			return s.Sessions().OwnedForEach(ctx, "n", func(Ownership) error { return nil })
		},
		"Apply": func(ctx context.Context) error {
			var b Batch
			_, err := s.Sessions().Apply(ctx, b.Fence(o).PacketAppend("s", ClassQoS0, &PersistedPacket{}))
			return err
		},
	}
}

func TestSharedNotSupported(t *testing.T) {
	s, c := openRec(t)
	if s.Shared() {
		t.Fatal("a Conn without driver.Sharer is Shared")
	}
	for name, call := range sharedCalls(s) {
		if err := call(testContext(t)); !errors.Is(err, ErrNotSupported) {
			t.Errorf("%s: %v, want ErrNotSupported", name, err)
		}
	}
	if got := c.called(); len(got) != 0 {
		t.Errorf("calls that reached the driver: %q, want none", got)
	}
}

func openSharer(t *testing.T) (*Store, *recSharer) {
	t.Helper()
	c := &recSharer{}
	s, err := OpenConnector(testContext(t), connConnector{c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, c
}

func TestSharedCallsReachTheDriver(t *testing.T) {
	s, c := openSharer(t)
	if !s.Shared() {
		t.Fatal("a Conn with driver.Sharer is not Shared")
	}
	for name, call := range sharedCalls(s) {
		if err := call(testContext(t)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if got := c.called(); len(got) == 0 || got[len(got)-1] != name {
			t.Errorf("%s: the driver's last call is %q", name, got)
		}
	}
	last := c.ops[len(c.ops)-1]
	if len(last) != 2 || last[0].Kind != driver.OpFence || last[0].ID != "s" || last[0].Epoch != 7 {
		t.Errorf("the fenced Apply reached the driver as %+v, want OpFence{s, 7} first", last)
	}
	n := 0
	err := s.Sessions().OwnedForEach(testContext(t), "n", func(Ownership) error { n++; return ErrStopIteration })
	if err != nil || n != 1 {
		t.Errorf("OwnedForEach stopped by ErrStopIteration: %v after %d callbacks, want nil after 1", err, n)
	}
	n = 0
	err = s.Nodes().ForEach(testContext(t), func(Lease) error { n++; return ErrStopIteration })
	if err != nil || n != 1 {
		t.Errorf("Nodes.ForEach stopped by ErrStopIteration: %v after %d callbacks, want nil after 1", err, n)
	}
}

func TestSharedGuards(t *testing.T) {
	s, c := openSharer(t)
	ctx := testContext(t)
	bad := map[string]error{}
	_, bad["Renew empty node"] = s.Nodes().Renew(ctx, "", time.Second)
	_, bad["Renew ttl 0"] = s.Nodes().Renew(ctx, "n", 0)
	bad["Leave empty node"] = s.Nodes().Leave(ctx, "")
	bad["Nodes.ForEach nil"] = s.Nodes().ForEach(ctx, nil)
	_, bad["Claim empty node"] = s.Sessions().Claim(ctx, "s", "")
	_, bad["Takeover empty node"] = s.Sessions().Takeover(ctx, "s", "")
	bad["Release epoch 0"] = s.Sessions().Release(ctx, Ownership{ID: "s", Node: "n"})
	bad["Release empty node"] = s.Sessions().Release(ctx, Ownership{ID: "s", Epoch: 1})
	bad["OwnedForEach empty node"] = s.Sessions().OwnedForEach(ctx, "", func(Ownership) error { return nil })
	bad["OwnedForEach nil"] = s.Sessions().OwnedForEach(ctx, "n", nil)
	var b Batch
	_, bad["Apply fence epoch 0"] = s.Sessions().Apply(ctx, b.Fence(Ownership{ID: "s", Node: "n"}))
	for name, err := range bad {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	for name, call := range sharedCalls(s) {
		if err := call(done); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", name, err)
		}
	}
	if got := c.called(); len(got) != 0 {
		t.Errorf("calls that reached the driver: %q, want none", got)
	}
	_ = s.Close()
	for name, call := range sharedCalls(s) {
		if err := call(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed store: %v, want ErrClosed", name, err)
		}
	}
}

func TestSharedFencesGoFirst(t *testing.T) {
	s, c := openSharer(t)
	var b Batch
	b.PacketAppend("s", ClassQoS0, &PersistedPacket{}).Fence(Ownership{ID: "s", Node: "n", Epoch: 3}).
		Delete("t").Fence(Ownership{ID: "t", Node: "n", Epoch: 4})
	user := slices.Clone(b.Ops())
	seqs, err := s.Sessions().Apply(testContext(t), &b)
	if err != nil || len(seqs) != 1 {
		t.Fatalf("Apply: %v, %v", seqs, err)
	}
	got := c.ops[len(c.ops)-1]
	kinds := make([]driver.OpKind, len(got))
	for i := range got {
		kinds[i] = got[i].Kind
	}
	want := []driver.OpKind{driver.OpFence, driver.OpFence, driver.OpPacketAppend, driver.OpDelete}
	if !slices.Equal(kinds, want) || got[0].Epoch != 3 || got[1].Epoch != 4 {
		t.Errorf("the driver received %+v, want the fences (epochs 3, 4) first, then the writes in order", got)
	}
	if !slices.EqualFunc(b.Ops(), user, func(x, y driver.Op) bool { return x.Kind == y.Kind && x.Epoch == y.Epoch }) {
		t.Errorf("Apply reordered the caller's batch")
	}
}
