package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence"
)

// config is what the flags set; tests build one directly.
type config struct {
	Store             string
	Listen            string
	TLSCert, TLSKey   string
	MaxQueued         int
	MaxQueuedBytes    int64
	ReceiveMaximum    int
	CPUProfile        string
	ShutdownTimeout   time.Duration
	SelfCheck         bool
	SelfCheckMessages int
	Logger            *slog.Logger
	Access            accessConfig // flags_access.go
}

func (c config) limits() broker.Limits {
	return broker.Limits{MaxQueuedMessages: c.MaxQueued, MaxQueuedBytes: c.MaxQueuedBytes, ReceiveMaximum: c.ReceiveMaximum}
}

func (c config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

func (c config) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		return nil, nil
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// openStore opens the store URL, creating the directory of a file-backed store
// first so the default ./data/ path works in a fresh checkout.
func openStore(ctx context.Context, dsn string, log *slog.Logger) (persistence.Provider, error) {
	if dir := localDir(dsn); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the store's directory: %w", err)
		}
	}
	return persistence.Open(ctx, dsn, persistence.WithLogger(log))
}

// localDir is the directory that must exist for a bolt file; other drivers create
// their own.
func localDir(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "bolt" {
		return ""
	}
	p := u.Opaque
	if p == "" {
		p = u.Host + u.Path
	}
	if p == "" {
		return ""
	}
	return filepath.Dir(p)
}

// redact hides a password in a store URL before it is logged.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable store URL)"
	}
	return u.Redacted()
}

// startBroker creates a broker on store and logs what it restored.
func startBroker(ctx context.Context, cfg config, store persistence.Provider) (*broker.Broker, error) {
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	opts := broker.Options{Store: store, Logger: cfg.logger(), TLSConfig: tlsConf, Limits: cfg.limits()}
	if err := cfg.Access.apply(ctx, &opts, cfg.logger()); err != nil {
		return nil, err
	}
	b, err := broker.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	r := b.Restored()
	cfg.logger().Info("demo: restored",
		"sessions", r.Sessions, "subscriptions", r.Subscriptions,
		"queued", r.QueuedMessages, "inflight", r.InflightMessages, "retained", r.Retained,
		"wills_fired", r.WillsFired, "sessions_expired", r.SessionsExpired,
		"took", time.Since(began).Round(time.Millisecond))
	return b, nil
}

// run serves until ctx ends, then shuts the broker down and closes the store. When
// ready is non-nil it receives the listening address once the broker accepts.
func run(ctx context.Context, cfg config, ready chan<- net.Addr) (err error) {
	log := cfg.logger()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
	}
	store, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return fmt.Errorf("opening store %s: %w", redact(cfg.Store), err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			log.Error("demo: closing the store", "err", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	driver := "?"
	if info, ierr := store.System().GetInfo(ctx); ierr == nil {
		driver = info.Driver
	}
	log.Info("demo: store opened", "driver", driver, "store", redact(cfg.Store))
	b, err := startBroker(ctx, cfg, store)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Close()
		return err
	}
	log.Info("demo: listening", "addr", l.Addr().String(), "tls", cfg.TLSCert != "")
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	if _, err := cfg.Access.serveWebsocket(b, log); err != nil {
		b.Close()
		<-served
		return err
	}
	if ready != nil {
		ready <- l.Addr()
	}
	select {
	case <-ctx.Done():
		log.Info("demo: shutting down")
	case err = <-served:
		// Serve only returns early when the listener fails.
		log.Error("demo: serve failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := b.Shutdown(sctx); serr != nil {
		log.Error("demo: shutdown", "err", serr)
		if err == nil {
			err = serr
		}
	}
	if err == nil {
		if serr := <-served; serr != nil {
			err = serr
		}
	}
	st := b.Stats()
	log.Info("demo: stopped", "messages_in", st.MessagesIn, "messages_out", st.MessagesOut, "dropped", st.Dropped, "storage_errors", st.StorageErrors)
	return err
}
