package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// config is everything the flags set; tests build one directly.
type config struct {
	Addr        string
	PubAddr     string // comma-separated addresses the publishers are spread over; "" → Addr
	SubAddr     string // the same for subscribers
	AllowRemote bool
	Phase       string
	Pubs        int
	Subs        int
	QoS         byte
	Size        int
	Count       int           // total messages over all publishers; 0: until Duration
	Duration    time.Duration // how long to publish; with Count, whichever ends first
	Rate        float64       // total messages per second over all publishers; 0 → as fast as acks allow
	Clean       bool          // clean sessions instead of persistent ones
	Fanout      bool          // every subscriber gets every message
	Prefix      string        // topic prefix and client id prefix
	Inflight    int           // unacknowledged publishes per publisher
	Parallel    int           // concurrent connections in the sessions and drain phases
	Reconnect   bool          // reconnect and resume across broker restarts
	Settle      time.Duration // give up waiting for owed messages after this long without progress
	Timeout     time.Duration // bound on the whole run
	State       string        // state file for publish → drain
	Since       int64         // wait phase: Unix nanoseconds to measure from
	Progress    bool          // a progress line on stderr once a second
	// ConnectTimeout bounds each CONNECT → CONNACK; a broker that resends a large
	// backlog before answering needs more than the usual few seconds.
	ConnectTimeout time.Duration
	// pahoQoS2 makes QoS 2 use paho.mqtt.golang as QoS 0 and 1 do: only for the
	// test that shows why it does not.
	pahoQoS2 bool
}

func (c *config) check() error {
	switch c.Phase {
	case "run", "sessions", "publish", "drain", "wait":
	default:
		return fmt.Errorf("unknown -phase %q (run, sessions, publish, drain, wait)", c.Phase)
	}
	if c.QoS > 2 {
		return fmt.Errorf("-qos %d: must be 0, 1 or 2", c.QoS)
	}
	if c.Pubs < 0 || c.Subs < 0 || c.Count < 0 || c.Size < 0 || c.Rate < 0 {
		return errors.New("negative -pubs, -subs, -count, -size or -rate")
	}
	if c.Pubs > 1<<20 || c.Subs > 1<<20 {
		return errors.New("-pubs and -subs are limited to 1048576")
	}
	if (c.Phase == "run" || c.Phase == "publish") && c.Pubs == 0 {
		return errors.New("-pubs must be at least 1")
	}
	if (c.Phase == "publish" || c.Phase == "sessions") && c.Subs == 0 {
		return errors.New("-subs must be at least 1")
	}
	if (c.Phase == "run" || c.Phase == "publish") && c.Count == 0 && c.Duration <= 0 {
		return errors.New("give -count or -duration (or both): a run is always bounded")
	}
	if (c.Phase == "publish" || c.Phase == "drain") && c.State == "" {
		return errors.New("-phase " + c.Phase + " needs -state FILE")
	}
	if (c.Phase == "publish" || c.Phase == "drain") && c.Clean {
		return errors.New("-phase " + c.Phase + " needs persistent sessions (-clean=false)")
	}
	if c.Timeout <= 0 {
		return errors.New("-timeout must be positive")
	}
	if c.Size < payloadHeader {
		c.Size = payloadHeader
	}
	if c.Inflight <= 0 {
		c.Inflight = 1
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.Parallel <= 0 {
		c.Parallel = 1
	}
	if c.Prefix == "" {
		c.Prefix = "mqttload"
	}
	return nil
}

// result is the run's summary; with -json it is printed as one line.
type result struct {
	Phase         string   `json:"phase"`
	Addr          string   `json:"addr"`
	PubAddrs      []string `json:"pub_addrs,omitempty"` // publishers' nodes (-pub-addr), when not just -addr
	SubAddrs      []string `json:"sub_addrs,omitempty"` // subscribers' nodes (-sub-addr), when not just -addr
	Pubs          int      `json:"pubs"`
	Subs          int      `json:"subs"`
	QoS           byte     `json:"qos"`
	Size          int      `json:"size"`
	Clean         bool     `json:"clean"`
	Reconnect     bool     `json:"reconnect"`
	Published     int64    `json:"published"`
	Acked         int64    `json:"acked"`
	Received      int64    `json:"received"`
	PublishErrors int64    `json:"publish_errors"`
	Seconds       float64  `json:"seconds"`        // first publish (or phase start) to last arrival
	PublishRate   float64  `json:"publish_rate"`   // acknowledged (QoS 0: sent) messages per second of publishing
	DeliveryRate  float64  `json:"msgs_per_s"`     // arrivals per second
	P50ms         float64  `json:"p50_ms"`         // end-to-end latency
	P99ms         float64  `json:"p99_ms"`         //
	MaxMs         float64  `json:"max_ms"`         //
	Sessions      int      `json:"sessions"`       // sessions created (sessions phase) or resumed (drain)
	SessionsLost  int      `json:"sessions_lost"`  // drain: CONNACK without session present
	ConnectErrors int64    `json:"connect_errors"` //
	Reconnects    int64    `json:"reconnects"`     // connection losses seen by all clients
	Failovers     int64    `json:"failovers"`      // connections made to another address than the client's previous one
	DrainSeconds  float64  `json:"drain_s,omitempty"`
	WaitSeconds   float64  `json:"wait_s,omitempty"`
	Verified      bool     `json:"verified"` // whether missing messages make the run fail
	verification
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

type runner struct {
	cfg      config
	addr     string   // -addr as host:port (the wait phase)
	pubAddrs []string // -pub-addr as host:port; publisher i's own node is pubAddrs[i mod len]
	subAddrs []string // -sub-addr likewise for subscribers
	runID    uint64
	tr       *tracker
	stderr   io.Writer

	published  atomic.Int64
	pubErrors  atomic.Int64
	connErrors atomic.Int64
	reconnects atomic.Int64
	failovers  atomic.Int64
}

// run executes one phase and returns its summary; an error means the run could not be
// carried out at all (bad flags, broker unreachable), not that verification failed.
func run(ctx context.Context, cfg config, stderr io.Writer) (result, error) {
	if err := cfg.check(); err != nil {
		return result{}, err
	}
	addr, err := hostPort(cfg.Addr, cfg.AllowRemote)
	if err != nil {
		return result{}, err
	}
	pubAddrs, err := addrList(cfg.PubAddr, addr, cfg.AllowRemote)
	if err != nil {
		return result{}, fmt.Errorf("-pub-addr: %w", err)
	}
	subAddrs, err := addrList(cfg.SubAddr, addr, cfg.AllowRemote)
	if err != nil {
		return result{}, fmt.Errorf("-sub-addr: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := &runner{cfg: cfg, addr: addr, pubAddrs: pubAddrs, subAddrs: subAddrs, runID: rand.Uint64(), stderr: stderr}
	res := result{Phase: cfg.Phase, Addr: cfg.Addr, Pubs: cfg.Pubs, Subs: cfg.Subs, QoS: cfg.QoS, Size: cfg.Size, Clean: cfg.Clean, Reconnect: cfg.Reconnect}
	if cfg.PubAddr != "" || cfg.SubAddr != "" {
		res.PubAddrs, res.SubAddrs = pubAddrs, subAddrs
	}
	switch cfg.Phase {
	case "run":
		err = r.runPhase(ctx, &res)
	case "sessions":
		err = r.sessionsPhase(ctx, &res)
	case "publish":
		err = r.publishPhase(ctx, &res)
	case "drain":
		err = r.drainPhase(ctx, &res)
	case "wait":
		err = r.waitPhase(ctx, &res)
	}
	res.PublishErrors = r.pubErrors.Load()
	res.ConnectErrors = r.connErrors.Load()
	res.Reconnects = r.reconnects.Load()
	res.Failovers = r.failovers.Load()
	if err != nil {
		return res, err
	}
	res.OK, res.Reason = judge(res)
	return res, nil
}

// judge decides whether a finished run passed.
func judge(res result) (bool, string) {
	switch {
	case res.Verified && res.Missing > 0:
		return false, fmt.Sprintf("%d owed messages missing", res.Missing)
	case res.Verified && res.QoS == 2 && res.Duplicates > 0:
		return false, fmt.Sprintf("%d duplicates at QoS 2", res.Duplicates)
	case res.Misrouted > 0:
		return false, fmt.Sprintf("%d messages delivered to a subscriber that did not subscribe to them", res.Misrouted)
	case res.PublishErrors > 0 && !res.Reconnect:
		// With -reconnect a publish may fail across a restart; it is then not owed.
		return false, fmt.Sprintf("%d publishes failed", res.PublishErrors)
	case res.SessionsLost > 0:
		return false, fmt.Sprintf("%d sessions were not present on reconnect", res.SessionsLost)
	}
	return true, ""
}

// progress prints a line on stderr once a second until stop is closed.
func (r *runner) progress(stop <-chan struct{}, begin time.Time) {
	if !r.cfg.Progress {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			c := r.tr.Counts()
			fmt.Fprintf(r.stderr, "mqttload %-8s %5.0fs published=%d acked=%d received=%d (%d/s) outstanding=%d reconnects=%d failovers=%d\n",
				r.cfg.Phase, now.Sub(begin).Seconds(), r.published.Load(), c.acked, c.received, c.received-last, c.outstanding, r.reconnects.Load(), r.failovers.Load())
			last = c.received
		}
	}
}

// awaitOwed waits until nothing owed is missing (QoS 0: until the expected number
// arrived), giving up after -settle without a new arrival or when ctx ends.
func (r *runner) awaitOwed(ctx context.Context, want func() bool) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	lastCount := int64(-1)
	lastChange := time.Now()
	for !want() {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if c := r.tr.Counts().received; c != lastCount {
				lastCount, lastChange = c, now
			} else if now.Sub(lastChange) > r.cfg.Settle {
				return
			}
		}
	}
}

func (r *runner) fillLatency(res *result) {
	l := r.tr.Latency()
	res.P50ms = float64(l.P50.Microseconds()) / 1000
	res.P99ms = float64(l.P99.Microseconds()) / 1000
	res.MaxMs = float64(l.Max.Microseconds()) / 1000
}

func (r *runner) runPhase(ctx context.Context, res *result) error {
	cfg := r.cfg
	r.tr = newTracker(cfg.Pubs, cfg.Subs, cfg.Fanout)
	subs := make([]client, cfg.Subs)
	defer func() {
		for _, c := range subs {
			if c != nil {
				c.Disconnect()
			}
		}
	}()
	err := forEach(ctx, cfg.Subs, cfg.Parallel, func(ctx context.Context, j int) error {
		c, _, err := r.subscriber(ctx, j, cfg.Clean, false)
		subs[j] = c
		return err
	})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	begin := time.Now()
	go r.progress(stop, begin)
	start, end, err := r.publishers(ctx)
	if err != nil {
		return err
	}
	published := r.published.Load()
	perMessage := int64(1)
	if cfg.Fanout {
		perMessage = int64(cfg.Subs)
	}
	if cfg.Subs == 0 {
		perMessage = 0
	}
	if cfg.QoS == 0 {
		r.awaitOwed(ctx, func() bool { return r.tr.Counts().received >= published*perMessage })
	} else {
		r.awaitOwed(ctx, func() bool { return r.tr.Outstanding() == 0 })
	}
	res.Published = published
	res.Acked = r.tr.Counts().acked
	if cfg.QoS == 0 {
		res.Acked = published
	}
	res.Received = r.tr.Counts().received
	res.PublishRate = rate(res.Acked, end.Sub(start))
	_, last := r.tr.arrivals()
	if last.Before(end) {
		last = end
	}
	res.Seconds = last.Sub(start).Seconds()
	res.DeliveryRate = rate(res.Received, last.Sub(start))
	r.fillLatency(res)
	res.Verified = cfg.QoS > 0 && cfg.Subs > 0 && (!cfg.Clean || !cfg.Reconnect)
	res.verification = r.tr.Verify()
	return nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func (r *runner) sessionsPhase(ctx context.Context, res *result) error {
	start := time.Now()
	var made atomic.Int64
	err := forEach(ctx, r.cfg.Subs, r.cfg.Parallel, func(ctx context.Context, j int) error {
		c, _, err := r.subscriber(ctx, j, false, false)
		if err != nil {
			return err
		}
		c.Disconnect()
		made.Add(1)
		return nil
	})
	res.Sessions = int(made.Load())
	res.Seconds = time.Since(start).Seconds()
	return err
}

func (r *runner) publishPhase(ctx context.Context, res *result) error {
	cfg := r.cfg
	r.tr = newTracker(cfg.Pubs, cfg.Subs, cfg.Fanout)
	stop := make(chan struct{})
	defer close(stop)
	go r.progress(stop, time.Now())
	start, end, err := r.publishers(ctx)
	if err != nil {
		return err
	}
	res.Published = r.published.Load()
	res.Acked = r.tr.Counts().acked
	res.Seconds = end.Sub(start).Seconds()
	res.PublishRate = rate(res.Acked, end.Sub(start))
	st := runState{RunID: r.runID, Prefix: cfg.Prefix, Pubs: cfg.Pubs, Subs: cfg.Subs, Fanout: cfg.Fanout, QoS: cfg.QoS, Acked: r.tr.ackedRanges()}
	return writeState(cfg.State, st)
}

func (r *runner) drainPhase(ctx context.Context, res *result) error {
	st, err := readState(r.cfg.State)
	if err != nil {
		return err
	}
	r.runID = st.RunID
	r.cfg.Prefix, r.cfg.Pubs, r.cfg.Subs, r.cfg.Fanout, r.cfg.QoS = st.Prefix, st.Pubs, st.Subs, st.Fanout, st.QoS
	res.Pubs, res.Subs, res.QoS = st.Pubs, st.Subs, st.QoS
	r.tr = newTracker(st.Pubs, st.Subs, st.Fanout)
	for pub, rs := range st.Acked {
		for _, rg := range rs {
			for seq := rg[0]; seq < rg[1]; seq++ {
				r.tr.Acked(pub, seq)
			}
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	go r.progress(stop, start)
	// A subscriber whose messages stop coming would hold its worker forever: the
	// watchdog ends the drain after -settle without any arrival.
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		r.awaitOwed(dctx, func() bool { return r.tr.Outstanding() == 0 })
		cancel()
	}()
	var present, lost atomic.Int64
	err = forEach(dctx, st.Subs, r.cfg.Parallel, func(ctx context.Context, j int) error {
		c, ok, err := r.subscriber(ctx, j, false, true)
		if err != nil {
			return err
		}
		defer c.Disconnect()
		if ok {
			present.Add(1)
		} else {
			lost.Add(1)
		}
		select {
		case <-r.tr.Watch(j):
		case <-ctx.Done():
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	_, last := r.tr.arrivals()
	if last.IsZero() {
		last = time.Now()
	}
	c := r.tr.Counts()
	res.Acked = c.acked
	res.Received = c.received
	res.Sessions = int(present.Load())
	res.SessionsLost = int(lost.Load())
	res.DrainSeconds = last.Sub(start).Seconds()
	res.Seconds = res.DrainSeconds
	res.DeliveryRate = rate(c.received, last.Sub(start))
	r.fillLatency(res)
	res.Verified = st.QoS > 0
	res.verification = r.tr.Verify()
	return nil
}

func (r *runner) waitPhase(ctx context.Context, res *result) error {
	since := time.Now()
	if r.cfg.Since > 0 {
		since = time.Unix(0, r.cfg.Since)
	}
	id := r.cfg.Prefix + "-probe-" + strconv.Itoa(os.Getpid())
	for {
		o := r.options(newRoute([]string{r.addr}, 0, nil), id, true).SetConnectTimeout(time.Second).SetAutoReconnect(false)
		c := mqtt.NewClient(o)
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return fmt.Errorf("broker at %s did not accept a connection: %w", r.cfg.Addr, ctx.Err())
		}
		if tok.Error() == nil {
			res.WaitSeconds = time.Since(since).Seconds()
			res.Seconds = res.WaitSeconds
			c.Disconnect(0)
			return nil
		}
		// Polling a port another process is about to open: there is nothing to wait on.
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}
