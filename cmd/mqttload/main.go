package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdout, os.Stderr))
}

// mainErr parses args, runs and prints; it returns the exit status: 0 passed, 1
// verification failed, 2 the run could not be carried out.
func mainErr(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqttload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var qos uint
	var asJSON bool
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:1883", "broker address host:port (loopback only unless -allow-remote)")
	fs.StringVar(&cfg.PubAddr, "pub-addr", "", "publishers' broker addresses HOST:PORT[,HOST:PORT...], spread round-robin (default -addr)")
	fs.StringVar(&cfg.SubAddr, "sub-addr", "", "subscribers' broker addresses HOST:PORT[,HOST:PORT...], spread round-robin (default -addr)")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "accept non-loopback -addr, -pub-addr and -sub-addr")
	fs.StringVar(&cfg.Phase, "phase", "run", "run, sessions, publish, drain or wait (see go doc)")
	fs.IntVar(&cfg.Pubs, "pubs", 1, "publishers")
	fs.IntVar(&cfg.Subs, "subs", 1, "subscribers (persistent sessions unless -clean)")
	fs.UintVar(&qos, "qos", 1, "QoS of publishes and subscriptions: 0, 1 or 2")
	fs.IntVar(&cfg.Size, "size", 256, "payload bytes (at least 28)")
	fs.IntVar(&cfg.Count, "count", 0, "total messages over all publishers (0: use -duration)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to publish (with -count: whichever ends first)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total publish rate in messages/s (0: as fast as acknowledgements allow)")
	fs.BoolVar(&cfg.Clean, "clean", false, "clean sessions (not verified across reconnects)")
	fs.BoolVar(&cfg.Fanout, "fanout", false, "every subscriber subscribes to every publisher's topic")
	fs.StringVar(&cfg.Prefix, "prefix", "mqttload", "topic and client id prefix")
	fs.IntVar(&cfg.Inflight, "inflight", 16, "unacknowledged publishes per publisher")
	fs.IntVar(&cfg.Parallel, "parallel", 64, "concurrent connection attempts")
	fs.BoolVar(&cfg.Reconnect, "reconnect", false, "reconnect and resume sessions across broker restarts")
	fs.DurationVar(&cfg.Settle, "settle", 30*time.Second, "stop waiting for owed messages after this long without an arrival")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.StringVar(&cfg.State, "state", "", "state file written by -phase publish and read by -phase drain")
	fs.Int64Var(&cfg.Since, "since", 0, "-phase wait: measure from this Unix time in nanoseconds")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 30*time.Second, "bound on each CONNECT until its CONNACK")
	fs.BoolVar(&cfg.Progress, "progress", true, "print a progress line on stderr once a second")
	fs.BoolVar(&asJSON, "json", false, "print the summary as one JSON line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mqttload: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if qos > 2 {
		fmt.Fprintf(stderr, "mqttload: -qos %d: must be 0, 1 or 2\n", qos)
		return 2
	}
	cfg.QoS = byte(qos)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "mqttload:", err)
		return 2
	}
	if asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintln(stderr, "mqttload:", err)
			return 2
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		printHuman(stdout, res)
	}
	if !res.OK {
		return 1
	}
	return 0
}

func printHuman(w io.Writer, r result) {
	fmt.Fprintf(w, "phase %s against %s: %d publishers, %d subscribers, QoS %d, %d B, clean=%v\n", r.Phase, r.Addr, r.Pubs, r.Subs, r.QoS, r.Size, r.Clean)
	if len(r.PubAddrs) > 0 || len(r.SubAddrs) > 0 {
		fmt.Fprintf(w, "publishers on %s, subscribers on %s\n", strings.Join(r.PubAddrs, ","), strings.Join(r.SubAddrs, ","))
	}
	switch r.Phase {
	case "sessions":
		fmt.Fprintf(w, "sessions created: %d in %.2fs\n", r.Sessions, r.Seconds)
	case "wait":
		fmt.Fprintf(w, "broker accepting after %.3fs\n", r.WaitSeconds)
	case "publish":
		fmt.Fprintf(w, "published %d, acknowledged %d in %.2fs (%.0f msgs/s), publish errors %d\n", r.Published, r.Acked, r.Seconds, r.PublishRate, r.PublishErrors)
	default:
		fmt.Fprintf(w, "published %d, acknowledged %d, received %d, publish errors %d, reconnects %d, failovers %d\n", r.Published, r.Acked, r.Received, r.PublishErrors, r.Reconnects, r.Failovers)
		fmt.Fprintf(w, "%.2fs: %.0f msgs/s delivered, %.0f msgs/s published\n", r.Seconds, r.DeliveryRate, r.PublishRate)
		fmt.Fprintf(w, "latency p50 %.2fms p99 %.2fms max %.2fms\n", r.P50ms, r.P99ms, r.MaxMs)
		if r.Phase == "drain" {
			fmt.Fprintf(w, "drained in %.2fs; sessions present %d, lost %d\n", r.DrainSeconds, r.Sessions, r.SessionsLost)
		}
		fmt.Fprintf(w, "verification (enforced=%v): owed %d, missing %d, duplicates %d, misrouted %d, stale %d\n", r.Verified, r.Owed, r.Missing, r.Duplicates, r.Misrouted, r.Stale)
		for _, e := range r.Examples {
			fmt.Fprintln(w, "  missing:", e)
		}
	}
	if r.OK {
		fmt.Fprintln(w, "OK")
	} else {
		fmt.Fprintln(w, "FAIL:", r.Reason)
	}
}
