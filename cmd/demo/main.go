package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/mem"
	_ "github.com/mqttstore/mqttstore/providers/postgres"
)

// defaultStore is the embedded default: a bbolt file next to the working directory,
// fsynced on every commit.
const defaultStore = "bolt://./data/mqttstore.db?sync=always"

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdout, os.Stderr))
}

func mainErr(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return passwdCommand(args[1:], stdin, stderr)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var level string
	fs.StringVar(&cfg.Store, "store", defaultStore, "store URL: mem://, bolt://FILE, badger://DIR, postgres://... (see the drivers' docs)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:1883", "address to listen on")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate file: serve MQTT over TLS (with -tls-key)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key file for -tls-cert")
	fs.IntVar(&cfg.MaxQueued, "max-queued", 0, "per-session queue limit in messages (0: the broker's default)")
	fs.Int64Var(&cfg.MaxQueuedBytes, "max-queued-bytes", 0, "per-session queue limit in bytes (0: the broker's default)")
	fs.IntVar(&cfg.ReceiveMaximum, "receive-maximum", 0, "in-flight window per client (0: the broker's default)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile to this file until shutdown")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a clean shutdown may take")
	fs.BoolVar(&cfg.SelfCheck, "selfcheck", false, "run the restart self-check against -store (on free loopback ports, not -listen) and exit")
	fs.IntVar(&cfg.SelfCheckMessages, "selfcheck-messages", 100, "messages the self-check publishes")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	registerAccessFlags(fs, &cfg.Access)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Access.noteSetFlags(fs)
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "demo: -log-level: %v\n", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.SelfCheck {
		if err := selfCheck(ctx, cfg, stdout); err != nil {
			fmt.Fprintln(stdout, "SELFCHECK FAILED:", err)
			return 1
		}
		fmt.Fprintln(stdout, "SELFCHECK PASSED")
		return 0
	}
	if err := run(ctx, cfg, nil); err != nil {
		cfg.Logger.Error("demo: stopped", "err", err)
		return 1
	}
	return 0
}
