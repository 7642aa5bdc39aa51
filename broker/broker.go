package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Options configures a Broker. Only Store is required.
type Options struct {
	// Store is required: the broker's only memory that outlives the process. The
	// caller opens it and closes it after Shutdown.
	Store *persistence.Store
	// Logger receives the broker's diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// TLSConfig, when non-nil, makes Serve and ListenAndServe speak TLS.
	TLSConfig *tls.Config
	// Hooks decide who may connect, publish and subscribe; nil funcs allow all.
	Hooks Hooks
	// Limits bound per-client resources; zero fields take documented defaults.
	Limits Limits
	// Clock is where the broker reads the time for every stored timestamp and
	// deadline; nil means time.Now. Timers still run on real time.
	Clock func() time.Time
	// SysInterval is how often the $SYS/broker/... statistics are published
	// (clients connected, messages received, sent, dropped, queued and in
	// flight, store errors, commits and mean commit latency); 0 means
	// DefaultSysInterval, a negative value turns them off. A client
	// subscribing to them gets the current values at once, flagged retained.
	SysInterval time.Duration
	// Quarantine lets New start when a session cannot be restored because
	// the store holds a damaged record of it (persistence.ErrBrokenEntry):
	// that session is set aside instead of failing New. A session set aside is
	// left in the store as it is, for an operator to repair or delete; it is
	// logged (client id and error), counted in RestoreStats.Quarantined and
	// listed by Quarantined, its subscriptions get no messages, and a client
	// connecting with its id is refused (CONNACK 0x88 server unavailable,
	// 3.1.1 return code 3). Other errors still fail New. Off by default: a
	// damaged store then stops New with an error naming the session.
	Quarantine bool
	// Node names this broker among the brokers sharing its store. It applies
	// only on a shared store (persistence.Store.Shared, e.g. PostgreSQL), which
	// puts the broker in cluster mode (see Broker.Node); "" derives a name from
	// the host name, the process id and a random suffix. Give each broker of a
	// cluster its own stable name: a broker restarted under the same name takes
	// back at once the sessions it held, instead of after LeaseTTL.
	Node string
	// LeaseTTL is, in cluster mode, how long the other brokers wait after this
	// one last renewed its lease (every LeaseTTL/3) before they take over its
	// sessions — publishing their wills and expiring them — when it died
	// without leaving; 0 means DefaultLeaseTTL. Keep it well above the clock
	// skew between the brokers' machines.
	LeaseTTL time.Duration
}

// RestoreStats reports what New restored from the store.
type RestoreStats struct {
	Sessions         int // persistent sessions restored
	Subscriptions    int // their subscriptions
	QueuedMessages   int // QoS 1/2 messages queued, not yet sent
	InflightMessages int // messages sent but not acknowledged (redelivered with DUP)
	Retained         int // retained messages in the store
	WillsFired       int // wills whose deadline had passed, published during New
	SessionsExpired  int // sessions whose expiry had passed, removed during New
	Quarantined      int // sessions set aside as damaged (Options.Quarantine)
}

// Stats are the broker's counters since New.
type Stats struct {
	Connected     int64 // clients connected now
	Connections   int64 // connections accepted (CONNACK success) in total
	Sessions      int64 // sessions known now (online and offline persistent)
	MessagesIn    int64 // PUBLISH packets accepted from clients (wills included)
	MessagesOut   int64 // PUBLISH packets written to clients (redeliveries included)
	Dropped       int64 // messages dropped for a subscriber: queue full, too large, expired, slow QoS 0
	StorageErrors int64 // failed store calls (each also logged and reported to the client)
	Refused       int64 // connections closed at once by Limits.MaxConnections or MaxConnectionRate
	BufferedBytes int64 // bytes waiting for the connections' writers or in memory queues now (Limits.MaxBufferedBytes)
}

// storeTimeout bounds each store call, so a stuck store turns into an error the
// client hears about instead of a hung connection.
const storeTimeout = 30 * time.Second

// Broker is an MQTT 3.1.1 and 5.0 server on top of a *persistence.Store. Create
// it with New, run it with Serve or ListenAndServe, stop it with Shutdown.
type Broker struct {
	opts   Options
	log    *slog.Logger
	limits Limits
	sess   *persistence.Sessions
	ret    *persistence.Retained

	// ctx is the parent of every store call; it ends when Shutdown has finished.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.RWMutex
	sessions  map[string]*session // every known session, by client id
	subs      subTree             // every session's subscriptions, by filter
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	addr      net.Addr
	closing   bool

	wg         sync.WaitGroup // connection goroutines
	bg         sync.WaitGroup // expiry loop
	expiryKick chan struct{}
	stopBG     chan struct{}
	shutOnce   sync.Once
	shutErr    error

	restored    RestoreStats
	started     time.Time
	sysInterval time.Duration
	sysMu       sync.Mutex
	// sysLastOps and sysLastNanos are the store counters at the last periodic
	// $SYS publication.
	sysLastOps, sysLastNanos int64

	// outMem is the broker-wide outgoing budget (Limits.MaxBufferedBytes);
	// live counts admitted connections and rate paces new ones (budget.go).
	outMem                        budget
	live                          atomic.Int64
	rate                          *rateLimiter
	refusedUnlogged, refusedLogAt atomic.Int64
	// quarantined holds the sessions set aside by restore, by id
	// (quarantine.go); written only during New.
	quarantined       map[string]error
	quarantineVisited int  // sessions LoadForEach handed to restore
	statsUnknown      bool // packet counts failed on a damaged record: restore reads every class

	stats struct {
		connected, connections, in, out, dropped, storageErrors, refused atomic.Int64
		storeOps, storeNanos                                             atomic.Int64 // fan-out commits and their total time
	}
	storeCtxs atomic.Pointer[sharedCtx]
	cl        *cluster // cluster mode (cluster.go); nil on a store that is not shared
}

// New restores the broker's state from opts.Store — every session, subscription,
// queued and in-flight message, incoming QoS 2 state, retained message, pending
// will and expiry deadline — and fires the wills and expiries whose deadline passed
// while the broker was down. Queued messages are counted, not loaded: they are read
// from the store a window at a time when delivered.
func New(ctx context.Context, opts Options) (*Broker, error) {
	if opts.Store == nil {
		return nil, errors.New("broker: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	b := &Broker{
		opts:       opts,
		log:        opts.Logger,
		limits:     opts.Limits.withDefaults(),
		sess:       opts.Store.Sessions(),
		ret:        opts.Store.Retained(),
		sessions:   map[string]*session{},
		conns:      map[*conn]struct{}{},
		listeners:  map[net.Listener]struct{}{},
		expiryKick: make(chan struct{}, 1),
		stopBG:     make(chan struct{}),
	}
	b.outMem.limit = b.limits.MaxBufferedBytes
	b.rate = newRateLimiter(b.limits.MaxConnectionRate)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if err := b.startCluster(ctx); err != nil { // cluster.go
		close(b.stopBG)
		b.cancel()
		b.bg.Wait()
		return nil, fmt.Errorf("broker: joining the cluster: %w", err)
	}
	if err := b.restore(ctx); err != nil {
		close(b.stopBG)
		b.cancel()
		b.bg.Wait()
		return nil, fmt.Errorf("broker: restoring state: %w", err)
	}
	b.runCluster()
	b.bg.Add(1)
	go b.expiryLoop()
	b.started = time.Now()
	b.sysInterval = opts.SysInterval
	if b.sysInterval == 0 {
		b.sysInterval = DefaultSysInterval
	}
	if b.sysInterval > 0 {
		b.bg.Add(1)
		go b.sysLoop(b.sysInterval)
	}
	return b, nil
}

func (b *Broker) now() time.Time { return b.opts.Clock() }

// storeCtxRenew is how long one shared store context is handed out.
const storeCtxRenew = time.Second

// sharedCtx is a store context shared by the store calls that start within
// storeCtxRenew of its creation.
type sharedCtx struct {
	ctx    context.Context
	cancel context.CancelFunc // called by its own deadline, or with the broker's
	born   time.Time
}

func noCancel() {}

// storeCtx returns the context for one store call: it ends with the broker, and
// between storeTimeout and storeTimeout+storeCtxRenew after the call starts.
// Calls share one context per storeCtxRenew, so the hot path does not allocate
// a context and a timer per store call; the returned cancel func is a no-op
// the caller may still defer.
func (b *Broker) storeCtx() (context.Context, context.CancelFunc) {
	now := time.Now()
	if sc := b.storeCtxs.Load(); sc != nil && now.Sub(sc.born) < storeCtxRenew {
		return sc.ctx, noCancel
	}
	sc := &sharedCtx{born: now}
	sc.ctx, sc.cancel = context.WithTimeout(b.ctx, storeTimeout+storeCtxRenew)
	b.storeCtxs.Store(sc)
	return sc.ctx, noCancel
}

// storageError counts and logs a failed store call; callers then tell the client.
func (b *Broker) storageError(op, client string, err error) {
	b.stats.storageErrors.Add(1)
	b.log.Error("broker: storage error", "op", op, "client", client, "err", err)
}

// observeStore records how long one fan-out commit took.
func (b *Broker) observeStore(d time.Duration) {
	b.stats.storeOps.Add(1)
	b.stats.storeNanos.Add(int64(d))
}

// Restored reports what New restored.
func (b *Broker) Restored() RestoreStats { return b.restored }

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.RLock()
	n := len(b.sessions)
	b.mu.RUnlock()
	return Stats{
		Connected:     b.stats.connected.Load(),
		Connections:   b.stats.connections.Load(),
		Sessions:      int64(n),
		MessagesIn:    b.stats.in.Load(),
		MessagesOut:   b.stats.out.Load(),
		Dropped:       b.stats.dropped.Load(),
		StorageErrors: b.stats.storageErrors.Load(),
		Refused:       b.stats.refused.Load(),
		BufferedBytes: b.outMem.used.Load(),
	}
}

// ErrServerClosed is returned by Serve and ListenAndServe when called after
// Shutdown.
var ErrServerClosed = errors.New("broker: server closed")

// ListenAndServe listens on the TCP address addr and calls Serve.
func (b *Broker) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return b.Serve(l)
}

// Serve accepts connections on l (wrapped in TLS when Options.TLSConfig is set)
// until Shutdown or Close, and then returns nil. It returns an error when l fails
// for another reason. l is closed when Serve returns.
func (b *Broker) Serve(l net.Listener) error {
	raw := l
	if b.opts.TLSConfig != nil {
		l = tls.NewListener(l, b.opts.TLSConfig)
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	b.listeners[l] = struct{}{}
	b.addr = raw.Addr()
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.listeners, l)
		b.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			b.mu.RLock()
			closing := b.closing
			b.mu.RUnlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// A transient accept failure (e.g. out of file descriptors): wait
				// and retry rather than stop serving everyone.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				b.log.Warn("broker: accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !b.track(nil) {
			nc.Close()
			return nil
		}
		go func() {
			defer b.wg.Done()
			b.serveConn(nc)
		}()
	}
}

// track adds one to the connection wait group unless the broker is shutting down.
func (b *Broker) track(c *conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return false
	}
	if c != nil {
		b.conns[c] = struct{}{}
		return true
	}
	b.wg.Add(1)
	return true
}

// Addr returns the address of the listener of the last Serve call (nil before).
func (b *Broker) Addr() net.Addr {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.addr
}

// Shutdown stops accepting connections, disconnects every client (5.0: DISCONNECT
// 0x8B server shutting down), records each persistent session's disconnect time,
// will and expiry deadlines in the store, stops the expiry timer and waits for every
// goroutine of the broker, or until ctx ends. No will is published during shutdown
// (see the package documentation). It does not close the Store.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.shutOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		for l := range b.listeners {
			l.Close()
		}
		conns := make([]*conn, 0, len(b.conns))
		for c := range b.conns {
			conns = append(conns, c)
		}
		b.mu.Unlock()
		for _, c := range conns {
			c.shutdownClose()
		}
		close(b.stopBG)
		leaveCtx, cancelLeave := context.WithTimeout(ctx, storeTimeout)
		b.leaveCluster(leaveCtx) // cluster.go
		cancelLeave()
		done := make(chan struct{})
		go func() {
			b.wg.Wait()
			b.bg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			b.shutErr = ctx.Err()
		}
		b.cancel()
	})
	return b.shutErr
}

// Close is Shutdown with a five-second deadline.
func (b *Broker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.Shutdown(ctx)
}
