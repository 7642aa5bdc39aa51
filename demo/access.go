package demo

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/auth"
)

// accessConfig is what the access-control, $SYS, keepalive and WebSocket flags
// set.
type accessConfig struct {
	PasswordFile string
	ACLFile      string
	// AllowAnonymous is -allow-anonymous; it only counts when AnonymousSet,
	// otherwise anonymous clients are allowed unless there is a password file.
	AllowAnonymous bool
	AnonymousSet   bool
	WSListen       string
	SysInterval    time.Duration
	MaxKeepAlive   uint
}

// anonymous reports whether clients without a user name may connect.
func (a *accessConfig) anonymous() bool {
	if a.AnonymousSet {
		return a.AllowAnonymous
	}
	return a.PasswordFile == ""
}

// registerAccessFlags adds the flags of accessConfig to fs.
func registerAccessFlags(fs *flag.FlagSet, a *accessConfig) {
	fs.StringVar(&a.PasswordFile, "password-file", "", "bcrypt password file (user:hash lines; add users with 'demo passwd FILE USER'); reloaded on SIGHUP")
	fs.StringVar(&a.ACLFile, "acl-file", "", "ACL file (Mosquitto syntax: user, topic, pattern with %u/%c); reloaded on SIGHUP")
	fs.BoolVar(&a.AllowAnonymous, "allow-anonymous", true, "let clients connect without a user name (default false when -password-file is set)")
	fs.StringVar(&a.WSListen, "ws-listen", "", "also serve MQTT over WebSocket (subprotocol mqtt) on this address; TLS with -tls-cert")
	fs.DurationVar(&a.SysInterval, "sys-interval", broker.DefaultSysInterval, "how often $SYS/broker statistics are published (negative: never)")
	fs.UintVar(&a.MaxKeepAlive, "max-keepalive", 0, "largest keepalive in seconds a client may use (told to 5.0 clients as Server Keep Alive; 0: no cap)")
}

// noteSetFlags records which access flags were given explicitly; call after Parse.
func (a *accessConfig) noteSetFlags(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "allow-anonymous" {
			a.AnonymousSet = true
		}
	})
}

// apply puts the access settings into opts; with a password or ACL file it loads
// them and reloads them on SIGHUP until ctx ends.
func (a *accessConfig) apply(ctx context.Context, opts *broker.Options, log *slog.Logger) error {
	opts.Limits.MaxKeepAlive = uint16(a.MaxKeepAlive)
	opts.SysInterval = a.SysInterval
	if a.SysInterval == 0 {
		opts.SysInterval = -1
	}
	anonymous := a.anonymous()
	if a.PasswordFile == "" && a.ACLFile == "" && anonymous {
		return nil
	}
	az, err := auth.New(auth.Config{PasswordFile: a.PasswordFile, ACLFile: a.ACLFile, AllowAnonymous: anonymous})
	if err != nil {
		return err
	}
	az.ReloadOnSIGHUP(ctx, log)
	opts.Hooks = az.Hooks()
	log.Info("demo: access control", "password_file", a.PasswordFile, "acl_file", a.ACLFile, "anonymous", anonymous)
	return nil
}

// serveWebsocket serves MQTT over WebSocket on l, the listener bound for -ws-listen.
func serveWebsocket(b *broker.Broker, l net.Listener, log *slog.Logger) {
	go func() {
		if err := b.ServeWebsocket(l); err != nil {
			log.Error("demo: websocket listener failed", "err", err)
		}
	}()
	log.Info("demo: websocket listening", "addr", l.Addr().String())
}

// passwdCommand is 'NAME passwd FILE USER': it reads the password from the first
// line of stdin and sets it for USER in FILE (created if needed).
func passwdCommand(name string, args []string, stdin io.Reader, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintf(stderr, "usage: %s passwd FILE USER   (the password is read from stdin)\n", name)
		return 2
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, name+" passwd:", err)
		return 1
	}
	if err := auth.AddUser(args[0], args[1], strings.TrimRight(line, "\r\n")); err != nil {
		fmt.Fprintln(stderr, name+" passwd:", err)
		return 1
	}
	fmt.Fprintf(stderr, "%s passwd: %s set in %s\n", name, args[1], args[0])
	return 0
}
