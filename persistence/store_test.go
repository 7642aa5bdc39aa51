package persistence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// recConn is a driver.Conn that records the calls that reach it and serves a few
// fixed items, so that the Store's guards can be checked without a real driver.
type recConn struct {
	mu     sync.Mutex
	calls  []string
	closed int
	err    error // returned by every call when set
}

func (c *recConn) rec(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, name)
	return c.err
}

func (c *recConn) called() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *recConn) Apply(_ context.Context, ops []driver.Op) ([]uint64, error) {
	var seqs []uint64
	for i, op := range ops {
		if op.Kind == driver.OpPacketAppend {
			seqs = append(seqs, uint64(i+1))
		}
	}
	return seqs, c.rec("Apply")
}
func (c *recConn) Exists(context.Context, string) (bool, error) { return true, c.rec("Exists") }
func (c *recConn) Count(context.Context) (uint64, error)        { return 1, c.rec("Count") }
func (c *recConn) LoadForEach(_ context.Context, fn SessionLoader) error {
	if err := c.rec("LoadForEach"); err != nil {
		return err
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := fn(&LoadedSession{ID: id}); err != nil {
			return err
		}
	}
	return nil
}
func (c *recConn) SubscriptionsLoad(context.Context, string) ([]Subscription, error) {
	return nil, c.rec("SubscriptionsLoad")
}
func (c *recConn) StateGet(context.Context, string) (*SessionState, error) {
	return &SessionState{}, c.rec("StateGet")
}
func (c *recConn) ExpiryGet(context.Context, string) (SessionExpiry, error) {
	return SessionExpiry{}, c.rec("ExpiryGet")
}
func (c *recConn) ExpiredForEach(_ context.Context, _ time.Time, fn ExpiredLoader) error {
	if err := c.rec("ExpiredForEach"); err != nil {
		return err
	}
	for _, id := range []string{"a", "b"} {
		if err := fn(id, SessionExpiry{}); err != nil {
			return err
		}
	}
	return nil
}
func (c *recConn) PacketGet(context.Context, string, PacketClass, uint64) (*PersistedPacket, error) {
	return &PersistedPacket{}, c.rec("PacketGet")
}
func (c *recConn) PacketCount(context.Context, string, PacketClass) (uint64, error) {
	return 2, c.rec("PacketCount")
}
func (c *recConn) PacketsForEach(_ context.Context, _ string, _ PacketClass, fn PacketLoader) error {
	if err := c.rec("PacketsForEach"); err != nil {
		return err
	}
	for i := range 3 {
		if _, err := fn(&PersistedPacket{Seq: uint64(i + 1)}); err != nil {
			return err
		}
	}
	return nil
}
func (c *recConn) RetainedPut(context.Context, string, *PersistedPacket) error {
	return c.rec("RetainedPut")
}
func (c *recConn) RetainedGet(context.Context, string) (*PersistedPacket, error) {
	return &PersistedPacket{}, c.rec("RetainedGet")
}
func (c *recConn) RetainedDelete(context.Context, string) error { return c.rec("RetainedDelete") }
func (c *recConn) RetainedLoad(_ context.Context, _ []string, fn RetainedLoader) error {
	if err := c.rec("RetainedLoad"); err != nil {
		return err
	}
	for _, topic := range []string{"a", "b"} {
		if err := fn(&RetainedMessage{Topic: topic, Packet: &PersistedPacket{}}); err != nil {
			return err
		}
	}
	return nil
}
func (c *recConn) RetainedReplace(context.Context, []*RetainedMessage) error {
	return c.rec("RetainedReplace")
}
func (c *recConn) RetainedCount(context.Context) (uint64, error) { return 0, c.rec("RetainedCount") }
func (c *recConn) Info(context.Context) (SystemInfo, error) {
	return SystemInfo{Driver: "rec"}, c.rec("Info")
}
func (c *recConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	return nil
}

type connConnector struct{ c driver.Conn }

func (cc connConnector) Connect(context.Context, driver.Env) (driver.Conn, error) { return cc.c, nil }

func openRec(t *testing.T, opts ...OpenOption) (*Store, *recConn) {
	t.Helper()
	c := &recConn{}
	s, err := OpenConnector(testContext(t), connConnector{c}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, c
}

var (
	okPacket = &PersistedPacket{QoS: 1, Data: []byte("x")}
	okState  = &SessionState{}
	noPacket = func(*PersistedPacket) (bool, error) { return false, nil }
)

// everyCall is one valid call of every Store method.
var everyCall = map[string]func(ctx context.Context, s *Store) error{
	"Info":   func(ctx context.Context, s *Store) error { _, err := s.Info(ctx); return err },
	"Create": func(ctx context.Context, s *Store) error { return s.Sessions().Create(ctx, "a", SessionBase{}) },
	"Exists": func(ctx context.Context, s *Store) error { _, err := s.Sessions().Exists(ctx, "a"); return err },
	"Count":  func(ctx context.Context, s *Store) error { _, err := s.Sessions().Count(ctx); return err },
	"LoadForEach": func(ctx context.Context, s *Store) error {
		return s.Sessions().LoadForEach(ctx, func(*LoadedSession) error { return nil })
	},
	"Delete": func(ctx context.Context, s *Store) error { return s.Sessions().Delete(ctx, "a") },
	"Apply": func(ctx context.Context, s *Store) error {
		_, err := s.Sessions().Apply(ctx, new(Batch).PacketAppend("a", ClassQoS12, okPacket))
		return err
	},
	"SubscriptionsStore": func(ctx context.Context, s *Store) error {
		return s.Sessions().SubscriptionsStore(ctx, "a", Subscription{Filter: "f"})
	},
	"SubscriptionsDelete": func(ctx context.Context, s *Store) error {
		return s.Sessions().SubscriptionsDelete(ctx, "a", "f")
	},
	"SubscriptionsDeleteAll": func(ctx context.Context, s *Store) error { return s.Sessions().SubscriptionsDeleteAll(ctx, "a") },
	"SubscriptionsLoad": func(ctx context.Context, s *Store) error {
		_, err := s.Sessions().SubscriptionsLoad(ctx, "a")
		return err
	},
	"StateStore":   func(ctx context.Context, s *Store) error { return s.Sessions().StateStore(ctx, "a", okState) },
	"StateGet":     func(ctx context.Context, s *Store) error { _, err := s.Sessions().StateGet(ctx, "a"); return err },
	"StateDelete":  func(ctx context.Context, s *Store) error { return s.Sessions().StateDelete(ctx, "a") },
	"ExpiryStore":  func(ctx context.Context, s *Store) error { return s.Sessions().ExpiryStore(ctx, "a", SessionExpiry{}) },
	"ExpiryGet":    func(ctx context.Context, s *Store) error { _, err := s.Sessions().ExpiryGet(ctx, "a"); return err },
	"ExpiryDelete": func(ctx context.Context, s *Store) error { return s.Sessions().ExpiryDelete(ctx, "a") },
	"ExpiredForEach": func(ctx context.Context, s *Store) error {
		return s.Sessions().ExpiredForEach(ctx, time.Now(), func(string, SessionExpiry) error { return nil })
	},
	"PacketAppend": func(ctx context.Context, s *Store) error {
		_, err := s.Sessions().PacketAppend(ctx, "a", ClassQoS0, okPacket)
		return err
	},
	"PacketGet": func(ctx context.Context, s *Store) error {
		_, err := s.Sessions().PacketGet(ctx, "a", ClassQoS0, 1)
		return err
	},
	"PacketUpdate": func(ctx context.Context, s *Store) error {
		return s.Sessions().PacketUpdate(ctx, "a", ClassUnAck, okPacket)
	},
	"PacketDelete": func(ctx context.Context, s *Store) error { return s.Sessions().PacketDelete(ctx, "a", ClassUnAck, 1) },
	"PacketCount": func(ctx context.Context, s *Store) error {
		_, err := s.Sessions().PacketCount(ctx, "a", ClassUnAck)
		return err
	},
	"PacketsForEach": func(ctx context.Context, s *Store) error {
		return s.Sessions().PacketsForEach(ctx, "a", ClassUnAck, noPacket)
	},
	"PacketsStore": func(ctx context.Context, s *Store) error {
		return s.Sessions().PacketsStore(ctx, "a", &PersistedPackets{QoS0: []*PersistedPacket{okPacket}})
	},
	"PacketsDelete":  func(ctx context.Context, s *Store) error { return s.Sessions().PacketsDelete(ctx, "a") },
	"RetainedPut":    func(ctx context.Context, s *Store) error { return s.Retained().Put(ctx, "t", okPacket) },
	"RetainedGet":    func(ctx context.Context, s *Store) error { _, err := s.Retained().Get(ctx, "t"); return err },
	"RetainedDelete": func(ctx context.Context, s *Store) error { return s.Retained().Delete(ctx, "t") },
	"RetainedLoadMatching": func(ctx context.Context, s *Store) error {
		return s.Retained().LoadMatching(ctx, []string{"#"}, func(*RetainedMessage) error { return nil })
	},
	"RetainedLoad": func(ctx context.Context, s *Store) error {
		return s.Retained().Load(ctx, func(*RetainedMessage) error { return nil })
	},
	"RetainedStore": func(ctx context.Context, s *Store) error {
		return s.Retained().Store(ctx, []*RetainedMessage{{Topic: "t", Packet: okPacket}})
	},
	"RetainedCount": func(ctx context.Context, s *Store) error { _, err := s.Retained().Count(ctx); return err },
	"RetainedWipe":  func(ctx context.Context, s *Store) error { return s.Retained().Wipe(ctx) },
}

func TestStoreCallsReachDriver(t *testing.T) {
	for name, call := range everyCall {
		s, c := openRec(t)
		if err := call(testContext(t), s); err != nil {
			t.Errorf("%s = %v", name, err)
		}
		if len(c.called()) == 0 {
			t.Errorf("%s did not reach the driver", name)
		}
	}
}

func TestStoreAfterCloseNeverReachesDriver(t *testing.T) {
	s, c := openRec(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	for name, call := range everyCall {
		if err := call(testContext(t), s); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if got := c.called(); len(got) != 0 {
		t.Errorf("calls reached the driver after Close: %v", got)
	}
	if c.closed != 1 {
		t.Errorf("driver closed %d times, want 1", c.closed)
	}
}

func TestStoreDoneContextNeverReachesDriver(t *testing.T) {
	s, c := openRec(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for name, call := range everyCall {
		if err := call(ctx, s); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", name, err)
		}
	}
	if got := c.called(); len(got) != 0 {
		t.Errorf("calls reached the driver with a cancelled context: %v", got)
	}
}

func TestStoreInvalidArgumentsNeverReachDriver(t *testing.T) {
	s, c := openRec(t)
	ss, rs := s.Sessions(), s.Retained()
	ctx := testContext(t)
	bad := map[string]func() error{
		"PacketAppend nil packet": func() error { _, err := ss.PacketAppend(ctx, "a", ClassQoS0, nil); return err },
		"PacketAppend class 0":    func() error { _, err := ss.PacketAppend(ctx, "a", 0, okPacket); return err },
		"PacketAppend class 5":    func() error { _, err := ss.PacketAppend(ctx, "a", 5, okPacket); return err },
		"PacketAppend QoS 3": func() error {
			_, err := ss.PacketAppend(ctx, "a", ClassQoS0, &PersistedPacket{QoS: 3})
			return err
		},
		"PacketUpdate nil":       func() error { return ss.PacketUpdate(ctx, "a", ClassUnAck, nil) },
		"PacketDelete class":     func() error { return ss.PacketDelete(ctx, "a", 9, 1) },
		"PacketGet class":        func() error { _, err := ss.PacketGet(ctx, "a", 0, 1); return err },
		"PacketCount class":      func() error { _, err := ss.PacketCount(ctx, "a", 0); return err },
		"PacketsForEach class":   func() error { return ss.PacketsForEach(ctx, "a", 0, noPacket) },
		"PacketsForEach nil fn":  func() error { return ss.PacketsForEach(ctx, "a", ClassQoS0, nil) },
		"PacketsStore nil":       func() error { return ss.PacketsStore(ctx, "a", nil) },
		"PacketsStore nil entry": func() error { return ss.PacketsStore(ctx, "a", &PersistedPackets{UnAck: []*PersistedPacket{nil}}) },
		"PacketsDelete class":    func() error { return ss.PacketsDelete(ctx, "a", ClassQoS0, 7) },
		"SubscriptionsStore empty filter": func() error {
			return ss.SubscriptionsStore(ctx, "a", Subscription{Filter: "ok"}, Subscription{})
		},
		"SubscriptionsStore QoS 3":  func() error { return ss.SubscriptionsStore(ctx, "a", Subscription{Filter: "f", QoS: 3}) },
		"SubscriptionsDelete empty": func() error { return ss.SubscriptionsDelete(ctx, "a", "") },
		"StateStore nil":            func() error { return ss.StateStore(ctx, "a", nil) },
		"StateStore bad will": func() error {
			return ss.StateStore(ctx, "a", &SessionState{Will: &PersistedPacket{QoS: 4}})
		},
		"LoadForEach nil":    func() error { return ss.LoadForEach(ctx, nil) },
		"ExpiredForEach nil": func() error { return ss.ExpiredForEach(ctx, time.Now(), nil) },
		"Apply nil batch":    func() error { _, err := ss.Apply(ctx, nil); return err },
		"Apply bad op": func() error {
			_, err := ss.Apply(ctx, new(Batch).Create("a", SessionBase{}).PacketAppend("a", 0, okPacket))
			return err
		},
		"Retained Put empty topic": func() error { return rs.Put(ctx, "", okPacket) },
		"Retained Put nil":         func() error { return rs.Put(ctx, "t", nil) },
		"Retained Get empty":       func() error { _, err := rs.Get(ctx, ""); return err },
		"Retained Delete empty":    func() error { return rs.Delete(ctx, "") },
		"Retained Load nil":        func() error { return rs.Load(ctx, nil) },
		"Retained LoadMatching nil fn": func() error {
			return rs.LoadMatching(ctx, []string{"#"}, nil)
		},
		"Retained LoadMatching empty filter": func() error {
			return rs.LoadMatching(ctx, []string{"#", ""}, func(*RetainedMessage) error { return nil })
		},
		"Retained Store nil message": func() error { return rs.Store(ctx, []*RetainedMessage{nil}) },
		"Retained Store empty topic": func() error {
			return rs.Store(ctx, []*RetainedMessage{{Packet: okPacket}})
		},
		"Retained Store nil packet": func() error { return rs.Store(ctx, []*RetainedMessage{{Topic: "t"}}) },
	}
	for name, call := range bad {
		if err := call(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s = %v, want ErrInvalidArgument", name, err)
		}
	}
	if got := c.called(); len(got) != 0 {
		t.Errorf("invalid calls reached the driver: %v", got)
	}
}

// Calls that need no write still report a missing session, and an empty filter
// list matches nothing without asking the driver.
func TestStoreEmptyWritesAndLoads(t *testing.T) {
	s, c := openRec(t)
	ctx := testContext(t)
	if err := s.Sessions().SubscriptionsStore(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sessions().PacketsStore(ctx, "a", &PersistedPackets{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.called(), ","); got != "Exists,Exists" {
		t.Errorf("empty writes called %q, want an existence check each", got)
	}
	calls := 0
	if err := s.Retained().LoadMatching(ctx, nil, func(*RetainedMessage) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("LoadMatching(nil filters) = %v with %d callbacks, want nothing", err, calls)
	}
	if seqs, err := s.Sessions().Apply(ctx, new(Batch)); err != nil || seqs != nil {
		t.Errorf("Apply(empty) = %v, %v", seqs, err)
	}
	if got := len(c.called()); got != 2 {
		t.Errorf("empty loads and batches reached the driver (%d calls)", got)
	}
}

func TestStoreStopIteration(t *testing.T) {
	s, _ := openRec(t)
	ctx := testContext(t)
	for _, stop := range []error{ErrStopIteration, fmt.Errorf("done here: %w", ErrStopIteration)} {
		n := 0
		err := s.Sessions().PacketsForEach(ctx, "a", ClassQoS12, func(*PersistedPacket) (bool, error) {
			n++
			return false, stop
		})
		if err != nil || n != 1 {
			t.Errorf("PacketsForEach stopped with %v: %v after %d callbacks, want nil after 1", stop, err, n)
		}
		n = 0
		err = s.Retained().Load(ctx, func(*RetainedMessage) error { n++; return stop })
		if err != nil || n != 1 {
			t.Errorf("Retained.Load stopped with %v: %v after %d callbacks, want nil after 1", stop, err, n)
		}
	}
	cause := errors.New("mine")
	if err := s.Sessions().LoadForEach(ctx, func(*LoadedSession) error { return cause }); !errors.Is(err, cause) {
		t.Errorf("LoadForEach = %v, want the callback's error", err)
	}
}

// A context cancelled, or the store closed, by a callback stops the iteration before
// the next callback.
func TestStoreIterationStopsBetweenCallbacks(t *testing.T) {
	s, _ := openRec(t)
	ctx, cancel := context.WithCancel(testContext(t))
	n := 0
	err := s.Sessions().ExpiredForEach(ctx, time.Now(), func(string, SessionExpiry) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("ExpiredForEach after cancel = %v after %d callbacks, want context.Canceled after 1", err, n)
	}
	n = 0
	err = s.Sessions().LoadForEach(testContext(t), func(*LoadedSession) error { n++; return s.Close() })
	if !errors.Is(err, ErrClosed) || n != 1 {
		t.Errorf("LoadForEach after Close = %v after %d callbacks, want ErrClosed after 1", err, n)
	}
}

// An error of a call that raced with Close matches ErrClosed whatever the driver said.
func TestStoreErrorAfterCloseMatchesErrClosed(t *testing.T) {
	s, c := openRec(t)
	c.err = errors.New("engine gone")
	err := s.Sessions().LoadForEach(testContext(t), func(*LoadedSession) error { return nil })
	if errors.Is(err, ErrClosed) {
		t.Fatalf("open store: %v matches ErrClosed", err)
	}
	err = s.Sessions().PacketsForEach(testContext(t), "a", ClassQoS0, func(*PersistedPacket) (bool, error) { return false, nil })
	_ = err
	s.closed.Store(true) // as if Close ran while the call was in the driver
	if err := s.result(c.err); !errors.Is(err, ErrClosed) || !errors.Is(err, c.err) {
		t.Errorf("result after Close = %v, want ErrClosed wrapping the driver's error", err)
	}
}

type recObserver struct {
	mu      sync.Mutex
	begun   []Call
	results []error
}

func (o *recObserver) Begin(ctx context.Context, c Call) (context.Context, func(error)) {
	o.mu.Lock()
	o.begun = append(o.begun, c)
	o.mu.Unlock()
	return ctx, func(err error) {
		o.mu.Lock()
		o.results = append(o.results, err)
		o.mu.Unlock()
	}
}

func TestStoreObserverSeesEveryCall(t *testing.T) {
	obs := &recObserver{}
	s, _ := openRec(t, WithObserver(obs))
	ctx := testContext(t)
	for _, call := range everyCall {
		_ = call(ctx, s)
	}
	if _, err := s.Sessions().PacketAppend(ctx, "a", 0, okPacket); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	if len(obs.begun) != len(everyCall)+1 || len(obs.results) != len(obs.begun) {
		t.Fatalf("observer saw %d calls begin and %d end, want %d", len(obs.begun), len(obs.results), len(everyCall)+1)
	}
	if last := obs.results[len(obs.results)-1]; !errors.Is(last, ErrInvalidArgument) {
		t.Errorf("observer got %v for an invalid call", last)
	}
	ops := map[string]int{}
	for _, c := range obs.begun {
		ops[c.Op] = c.Ops
	}
	if ops["PacketsDelete"] != 4 || ops["SubscriptionsStore"] != 1 || ops["Count"] != 0 {
		t.Errorf("observer's operation counts: %v", ops)
	}
}
