package demo

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence"
)

// DefaultStore is the store URL used when -store is not given and bolt is
// registered: a bbolt file under ./data/ (created if needed), fsynced on every
// commit.
const DefaultStore = "bolt://./data/mqttstore.db?sync=always"

// Main runs the program with the command-line arguments args (os.Args[1:]) on the
// drivers the calling program imported, writing to os.Stdout and os.Stderr, until
// SIGINT or SIGTERM; it returns the exit status (0 success, 1 failure, 2 bad usage).
// A main calls os.Exit(demo.Main(os.Args[1:])).
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return (&Command{Name: filepath.Base(os.Args[0])}).Run(ctx, args)
}

// Command is the program with what a caller may change; the zero value is what
// [Main] runs, except that Main names the program after os.Args[0].
type Command struct {
	// Name is the program's name in its help and messages; "demo" when empty.
	Name string
	// DefaultStore is the -store default. When empty it is [DefaultStore] if the
	// bolt driver is registered and otherwise none: -store is then required.
	DefaultStore string
	// Stdout and Stderr receive the self-check's report and the logs, help and
	// errors; os.Stdout and os.Stderr when nil.
	Stdout, Stderr io.Writer
	// Stdin is where "passwd" reads the password from; os.Stdin when nil.
	Stdin io.Reader
	// Started, when not nil, is called once the broker serves, with the addresses
	// it listens on (not in -selfcheck mode).
	Started func(Addrs)
}

// Addrs are the addresses a running program listens on.
type Addrs struct {
	MQTT      net.Addr // the broker
	Metrics   net.Addr // the /metrics endpoint; nil without -metrics
	Websocket net.Addr // MQTT over WebSocket; nil without -ws-listen
}

// config is what the flags set; tests build one directly.
type config struct {
	Store             string
	Listen            string
	Metrics           string
	TLSCert, TLSKey   string
	MaxQueued         int
	MaxQueuedBytes    int64
	ReceiveMaximum    int
	MaxConnQueueBytes int64
	MaxBufferedBytes  int64
	BackpressureWait  time.Duration
	MaxConnections    int
	MaxConnRate       int
	IdleTimeout       time.Duration
	Quarantine        bool
	Node              string        // cluster mode: this broker's node name
	Lease             time.Duration // cluster mode: the lease after which a silent node's sessions are taken over
	CPUProfile        string
	MemProfile        string
	GCPercent         int   // gc.go's policy; 0: Go's default collector settings
	GCSoftLimit       int64 // gc.go's policy: the heap size up to which GCPercent applies
	ShutdownTimeout   time.Duration
	SelfCheck         bool
	SelfCheckMessages int
	Logger            *slog.Logger
	Access            accessConfig // access.go

	tls *tls.Config // loaded from TLSCert and TLSKey by check
}

// usageError is a problem with the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func (c *Command) name() string {
	if c.Name == "" {
		return "demo"
	}
	return c.Name
}

func (c *Command) defaultStore() string {
	if c.DefaultStore != "" {
		return c.DefaultStore
	}
	if slices.Contains(persistence.Drivers(), "bolt") {
		return DefaultStore
	}
	return ""
}

// Run runs the program like [Main] with args until ctx ends, and returns the exit
// status.
func (c *Command) Run(ctx context.Context, args []string) int {
	stdout, stderr := c.Stdout, c.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	name := c.name()
	if len(args) > 0 && args[0] == "passwd" {
		in := c.Stdin
		if in == nil {
			in = os.Stdin
		}
		return passwdCommand(name, args[1:], in, stderr)
	}
	cfg, err := c.parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		// The flag package has already printed its own errors with the usage.
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "%s: %s\nRun '%s -h' for help.\n", name, ue.msg, name)
		}
		return 2
	}
	if cfg.SelfCheck {
		if err := selfCheck(ctx, cfg, stdout); err != nil {
			fmt.Fprintln(stdout, "SELFCHECK FAILED:", err)
			return 1
		}
		fmt.Fprintln(stdout, "SELFCHECK PASSED")
		return 0
	}
	if err := run(ctx, name, cfg, c.Started); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// parse reads and checks the flags; a returned error other than flag.ErrHelp and
// a usageError has already been printed by the flag package.
func (c *Command) parse(args []string, stderr io.Writer) (config, error) {
	name := c.name()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := c.defaultStore()
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `%s runs an MQTT broker (MQTT 3.1.1 and 5.0, package
github.com/mqttstore/mqttstore/broker) that keeps its sessions, subscriptions,
queued and in-flight messages, retained messages and wills in a store chosen by
URL, so that they survive a restart. With -selfcheck it proves that end to end
with real clients and exits.

Usage: %s [flags]

Store drivers in this program: %s.

Flags:
`, name, name, strings.Join(persistence.Drivers(), ", "))
		fs.PrintDefaults()
	}
	var cfg config
	var level string
	storeHelp := "store URL, e.g. mem://, bolt://FILE?sync=always, badger://DIR, postgres://USER:PASSWORD@HOST/DB?schema=NAME (see each driver's documentation)"
	if def == "" {
		storeHelp += " (required)"
	}
	fs.StringVar(&cfg.Store, "store", def, storeHelp)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:1883", "`address` to serve MQTT on")
	fs.StringVar(&cfg.Metrics, "metrics", "", "`address` to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9464); none when empty")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate `file`: serve MQTT over TLS (with -tls-key)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key `file` for -tls-cert")
	fs.IntVar(&cfg.MaxQueued, "max-queued", 0, "per-session queue limit in messages (0: the broker's default, 10000)")
	fs.Int64Var(&cfg.MaxQueuedBytes, "max-queued-bytes", 0, "per-session queue limit in bytes (0: the broker's default, 64 MiB)")
	fs.IntVar(&cfg.ReceiveMaximum, "receive-maximum", 0, "in-flight window per client, 0 to 65535 (0: the broker's default)")
	fs.Int64Var(&cfg.MaxConnQueueBytes, "max-conn-queue-bytes", broker.DefaultMaxConnQueueBytes, "bytes waiting to be written to one client; a QoS 0 message beyond it pauses its publisher up to -backpressure-wait, then is dropped for that client")
	fs.Int64Var(&cfg.MaxBufferedBytes, "max-buffered-bytes", broker.DefaultMaxBufferedBytes, "bytes waiting to be written to all clients together (same policy as -max-conn-queue-bytes) plus QoS 1/2 messages queued in memory for clean sessions (dropped beyond it)")
	fs.DurationVar(&cfg.BackpressureWait, "backpressure-wait", broker.DefaultBackpressureWait, "how long a publisher is paused for a full subscriber before the QoS 0 message is dropped for it (negative: drop at once)")
	fs.IntVar(&cfg.MaxConnections, "max-connections", broker.DefaultMaxConnections, "connections served at once; more are closed when accepted (negative: no limit)")
	fs.IntVar(&cfg.MaxConnRate, "max-connection-rate", broker.DefaultMaxConnectionRate, "new connections served per second (burst as many); more wait their turn, and are closed when it is over 2s away (negative: no limit)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", broker.DefaultIdleTimeout, "how long a client with keep-alive 0 may go without sending a whole packet (negative: forever)")
	fs.BoolVar(&cfg.Quarantine, "quarantine", false, "start even if sessions in the store are damaged: set them aside (logged, counted, their clients refused) instead of refusing to start")
	fs.StringVar(&cfg.Node, "node", "", "cluster mode (a shared store such as postgres): this broker's node `name`, unique in the cluster and the same across its restarts (default: host name and -listen port)")
	fs.DurationVar(&cfg.Lease, "lease", broker.DefaultLeaseTTL, "cluster mode: how long after a node stops renewing its lease the other nodes take over its sessions (wills, expiry)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile to `file` until shutdown")
	fs.StringVar(&cfg.MemProfile, "memprofile", "", "write an allocation profile to `file` at shutdown")
	fs.IntVar(&cfg.GCPercent, "gc-percent", defaultGCPercent, "GOGC while the heap stays under -gc-soft-limit, lowered (not below 100) above it; 0: Go's default (GOGC=100); ignored when GOGC or GOMEMLIMIT is set")
	fs.Int64Var(&cfg.GCSoftLimit, "gc-soft-limit", defaultGCSoftLimit, "heap `bytes` up to which -gc-percent applies")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a clean shutdown may take")
	fs.BoolVar(&cfg.SelfCheck, "selfcheck", false, "run the restart self-check against -store (on free loopback ports, not -listen) and exit")
	fs.IntVar(&cfg.SelfCheckMessages, "selfcheck-messages", 100, "messages the self-check publishes")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	registerAccessFlags(fs, &cfg.Access)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	cfg.Access.noteSetFlags(fs)
	if fs.NArg() > 0 {
		return config{}, usagef("unexpected arguments %q", fs.Args())
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return config{}, usagef("-log-level %q: want debug, info, warn or error", level)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	if err := cfg.check(); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// check validates everything that can be validated without opening the store or
// binding an address, and loads the TLS certificate.
func (cfg *config) check() error {
	switch {
	case cfg.Store == "":
		return usagef("-store is required (drivers in this program: %s)", strings.Join(persistence.Drivers(), ", "))
	case cfg.MaxQueued < 0:
		return usagef("-max-queued %d: must not be negative", cfg.MaxQueued)
	case cfg.MaxQueuedBytes < 0:
		return usagef("-max-queued-bytes %d: must not be negative", cfg.MaxQueuedBytes)
	case cfg.MaxConnQueueBytes < 0:
		return usagef("-max-conn-queue-bytes %d: must not be negative", cfg.MaxConnQueueBytes)
	case cfg.MaxBufferedBytes < 0:
		return usagef("-max-buffered-bytes %d: must not be negative", cfg.MaxBufferedBytes)
	case cfg.ReceiveMaximum < 0 || cfg.ReceiveMaximum > 65535:
		return usagef("-receive-maximum %d: must be between 0 and 65535", cfg.ReceiveMaximum)
	case cfg.ShutdownTimeout <= 0:
		return usagef("-shutdown-timeout %v: must be positive", cfg.ShutdownTimeout)
	case cfg.GCPercent < 0:
		return usagef("-gc-percent %d: must not be negative", cfg.GCPercent)
	case cfg.GCSoftLimit < 0:
		return usagef("-gc-soft-limit %d: must not be negative", cfg.GCSoftLimit)
	case cfg.SelfCheckMessages <= 0:
		return usagef("-selfcheck-messages %d: must be positive", cfg.SelfCheckMessages)
	case cfg.SelfCheck && cfg.Metrics != "":
		return usagef("-metrics does not go with -selfcheck")
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return usagef("-tls-cert and -tls-key go together")
	case cfg.Access.MaxKeepAlive > 65535:
		return usagef("-max-keepalive %d: at most 65535 seconds", cfg.Access.MaxKeepAlive)
	}
	if cfg.Lease < 0 || (cfg.Lease > 0 && cfg.Lease < 3*time.Millisecond) {
		return usagef("-lease %v: must be at least 3ms", cfg.Lease)
	}
	if cfg.Access.WSListen != "" {
		if _, _, err := net.SplitHostPort(cfg.Access.WSListen); err != nil {
			return usagef("-ws-listen %q: %v", cfg.Access.WSListen, addrErr(err))
		}
	}
	if cfg.Listen == "" {
		return usagef("-listen: empty address")
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return usagef("-listen %q: %v", cfg.Listen, addrErr(err))
	}
	if cfg.Metrics != "" {
		if _, _, err := net.SplitHostPort(cfg.Metrics); err != nil {
			return usagef("-metrics %q: %v", cfg.Metrics, addrErr(err))
		}
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return usagef("-tls-cert/-tls-key: %v", err)
		}
		cfg.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// The URL and every option of the driver, without opening anything. The
	// persistence package's errors name the URL (redacted) themselves.
	if _, err := persistence.NewConnector(cfg.Store); err != nil {
		return usagef("-store: %v", err)
	}
	return nil
}

// listen binds addr, the value of -flag. Its error names the flag and the address
// once: "-listen 127.0.0.1:1883: bind: address already in use".
func listen(flag, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return nil, fmt.Errorf("-%s %s: %w", flag, addr, addrErr(err))
	}
	return l, nil
}

// addrErr drops the address from a net.AddrError, which the caller already names.
func addrErr(err error) error {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return errors.New(ae.Err)
	}
	return err
}

func (cfg config) limits() broker.Limits {
	return broker.Limits{
		MaxQueuedMessages: cfg.MaxQueued, MaxQueuedBytes: cfg.MaxQueuedBytes, ReceiveMaximum: cfg.ReceiveMaximum,
		MaxConnQueueBytes: cfg.MaxConnQueueBytes, MaxBufferedBytes: cfg.MaxBufferedBytes,
		BackpressureWait: cfg.BackpressureWait, MaxConnections: cfg.MaxConnections,
		MaxConnectionRate: cfg.MaxConnRate, IdleTimeout: cfg.IdleTimeout,
	}
}

func (cfg config) logger() *slog.Logger {
	if cfg.Logger == nil {
		return slog.Default()
	}
	return cfg.Logger
}

// openStore opens cfg.Store; obs, when not nil, observes every call.
func openStore(ctx context.Context, cfg config, obs persistence.Observer) (*persistence.Store, error) {
	opts := []persistence.OpenOption{persistence.WithLogger(cfg.logger())}
	if obs != nil {
		opts = append(opts, persistence.WithObserver(obs))
	}
	cfg.logger().Info("demo: opening the store", "store", persistence.Redact(cfg.Store))
	s, err := persistence.Open(ctx, cfg.Store, opts...)
	if err != nil {
		// The drivers' errors name what they failed to open (a file, a server), and
		// persistence.Open removes any password from them.
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	return s, nil
}

// nodeName is -node, or else the host name and -listen's port: stable across
// restarts, distinct for brokers of one host. Empty (the broker derives one) when
// -listen picks a free port.
func (cfg config) nodeName() string {
	if cfg.Node != "" {
		return cfg.Node
	}
	_, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + ":" + port
}

// startBroker creates a broker on store, which restores its state and logs what it
// restored. opts carries the access settings ([accessConfig.apply]); the rest comes
// from cfg.
func startBroker(ctx context.Context, cfg config, store *persistence.Store, opts broker.Options) (*broker.Broker, error) {
	opts.Store, opts.Logger, opts.TLSConfig = store, cfg.logger(), cfg.tls
	opts.Quarantine = cfg.Quarantine
	opts.Node, opts.LeaseTTL = cfg.nodeName(), cfg.Lease
	lim := cfg.limits()
	lim.MaxKeepAlive = opts.Limits.MaxKeepAlive
	opts.Limits = lim
	return broker.New(ctx, opts)
}

// run binds the listeners, opens the store, restores the broker and serves until
// ctx ends; then it shuts the broker down and closes the store. started, when not
// nil, is called once the broker serves.
func run(ctx context.Context, name string, cfg config, started func(Addrs)) (err error) {
	log := cfg.logger()
	l, err := listen("listen", cfg.Listen)
	if err != nil {
		return err
	}
	defer l.Close() // Serve closes it too; this is for the early returns
	var ms *metricsServer
	if cfg.Metrics != "" {
		ml, err := listen("metrics", cfg.Metrics)
		if err != nil {
			return err
		}
		ms, err = startMetrics(ml, name, log)
		if err != nil {
			ml.Close()
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			if serr := ms.shutdown(sctx); serr != nil {
				log.Error("demo: stopping the metrics server", "err", serr)
			}
		}()
		log.Info("demo: serving metrics", "url", "http://"+ml.Addr().String()+"/metrics")
	}
	var wl net.Listener
	if cfg.Access.WSListen != "" {
		if wl, err = listen("ws-listen", cfg.Access.WSListen); err != nil {
			return err
		}
		defer wl.Close()
	}
	// Password and ACL files are read before the store is opened: a mistake in
	// them must not cost a restore.
	var opts broker.Options
	if err := cfg.Access.apply(ctx, &opts, log); err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("-cpuprofile: %w", cerr)
			}
		}()
	}

	if cfg.MemProfile != "" {
		defer func() {
			if perr := writeMemProfile(cfg.MemProfile); perr != nil && err == nil {
				err = perr
			}
		}()
	}
	defer startGC(cfg.GCPercent, cfg.GCSoftLimit).stop()

	var obs persistence.Observer
	if ms != nil {
		obs = ms.observer
	}
	store, err := openStore(ctx, cfg, obs)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			cerr = fmt.Errorf("closing the store: %w", cerr)
			if err == nil {
				err = cerr
			} else {
				log.Error("demo: " + cerr.Error())
			}
		}
	}()
	driverName := "?"
	if info, ierr := store.Info(ctx); ierr == nil {
		driverName = info.Driver
	}
	log.Info("demo: store opened", "driver", driverName)
	began := time.Now()
	b, err := startBroker(ctx, cfg, store, opts)
	if err != nil {
		return err // "broker: restoring state: …"
	}
	restoredIn := time.Since(began).Round(time.Millisecond)
	if ms != nil {
		ms.setBroker(b)
	}
	log.Info("demo: listening", "addr", l.Addr().String(), "tls", cfg.tls != nil, "restored_in", restoredIn)
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	if wl != nil {
		serveWebsocket(b, wl, log)
	}
	if started != nil {
		a := Addrs{MQTT: l.Addr()}
		if wl != nil {
			a.Websocket = wl.Addr()
		}
		if ms != nil {
			a.Metrics = ms.addr
		}
		started(a)
	}
	select {
	case <-ctx.Done():
		log.Info("demo: shutting down")
	case err = <-served:
		// Serve only returns early when the listener fails.
		err = fmt.Errorf("serving MQTT: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := b.Shutdown(sctx); serr != nil {
		serr = fmt.Errorf("shutting the broker down: %w", serr)
		if err == nil {
			err = serr
		} else {
			log.Error("demo: " + serr.Error())
		}
	}
	if err == nil {
		if serr := <-served; serr != nil {
			err = fmt.Errorf("serving MQTT: %w", serr)
		}
	}
	st := b.Stats()
	log.Info("demo: stopped", "connections", st.Connections, "messages_in", st.MessagesIn, "messages_out", st.MessagesOut,
		"dropped", st.Dropped, "storage_errors", st.StorageErrors, "refused", st.Refused)
	return err
}
