package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// The environment variables pgtest reads.
const (
	// EnvDSN names an existing server to use instead of a container.
	EnvDSN = "MQTTSTORE_POSTGRES_DSN"
	// EnvImage names the container image.
	EnvImage = "MQTTSTORE_POSTGRES_IMAGE"
	// DefaultImage is used when EnvImage is unset.
	DefaultImage = "postgres:16-alpine"
)

// dsnExample is the DSN shown in the hint of how to run the tests without Docker.
const dsnExample = "postgres://USER:PASSWORD@127.0.0.1:5432/DB?sslmode=disable"

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
	// skipped is why the tests could not reach a server ("" when they could):
	// Main prints it once, visibly.
	skipped string
}

// Main runs the tests of m and then terminates the shared container. When tests
// were skipped for want of a server, it prints one line saying why and the exact
// command that runs them (see the package documentation for where it goes). Call
// it from the package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Terminate()
	shared.mu.Lock()
	skipped := shared.skipped
	shared.mu.Unlock()
	if skipped != "" {
		notice(skipped)
	}
	os.Exit(code)
}

// Terminate stops and removes the shared container, if one was started. It is safe
// to call more than once.
func Terminate() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.terminate()
		shared.srv = nil
	}
	if shared.err == nil {
		shared.err = fmt.Errorf("pgtest: the shared container was terminated")
	}
}

// unavailable skips t, or fails it when CI is set. why is one line; hint is the
// command that runs the tests.
func unavailable(t testing.TB, why, hint string) {
	t.Helper()
	msg := "PostgreSQL tests skipped: " + why + "; to run them: " + hint
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this is a failure)")
	}
	shared.mu.Lock()
	if shared.skipped == "" {
		shared.skipped = msg
		uncacheable()
	}
	shared.mu.Unlock()
	t.Skip(msg)
}

// noServer skips or fails t because neither a DSN nor a container is available.
func noServer(t testing.TB, err error) {
	t.Helper()
	var nd *noDockerError
	if errors.As(err, &nd) {
		unavailable(t, nd.Error()+" and "+EnvDSN+" is unset",
			"start Docker and run `go test ./...` again, or run `"+EnvDSN+"='"+dsnExample+"' go test ./...`")
	}
	unavailable(t, oneLine(err.Error()),
		"run `"+EnvImage+"=<a PostgreSQL image Docker has or can pull> go test ./...`, or `"+EnvDSN+"='"+dsnExample+"' go test ./...`")
}

// oneLine shortens s to one line of reasonable length.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// DSN returns the URL of a fresh, empty schema on the test server, for
// persistence.Open: "postgres://…/db?sslmode=disable&schema=t_…". The schema is
// dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	if env := os.Getenv(EnvDSN); env != "" {
		if err := checkLoopback(env); err != nil {
			t.Fatalf("pgtest: %s: %v", EnvDSN, err)
		}
		return freshSchema(t, env)
	}
	shared.mu.Lock()
	if shared.srv == nil && shared.err == nil {
		if shared.err = setupDocker(); shared.err == nil {
			shared.srv, shared.err = start("")
		}
	}
	err := shared.err
	shared.mu.Unlock()
	if err != nil {
		noServer(t, err)
	}
	shared.mu.Lock()
	srv := shared.srv
	shared.mu.Unlock()
	if srv == nil {
		noServer(t, errors.New("the shared container was terminated"))
	}
	return freshSchema(t, srv.base)
}

func checkLoopback(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("want a postgres:// URL")
	}
	switch u.Hostname() {
	case "127.0.0.1", "localhost", "::1":
		return nil
	}
	return fmt.Errorf("host %q is not loopback; tests may only talk to 127.0.0.1", u.Hostname())
}

// freshSchema names a new schema on the server at base and registers its drop.
func freshSchema(t testing.TB, base string) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: bad base DSN: %v", err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Logf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return u.String()
}

// Server is a PostgreSQL container of one's own, for tests that stop and start it.
// Its host port is fixed when it is created, so DSNs stay valid across a restart.
type Server struct {
	c    *tcpostgres.PostgresContainer
	base string // DSN of the server's database, without a schema
}

// NewServer starts a dedicated container, terminated when t ends. It skips or fails
// t (see the package documentation) when containers cannot be started.
func NewServer(t testing.TB) *Server {
	t.Helper()
	if os.Getenv(EnvDSN) != "" {
		t.Skipf("pgtest: %s is set: this test needs a container of its own, which it may stop and start; unset it to run this test", EnvDSN)
	}
	if err := setupDocker(); err != nil {
		noServer(t, err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s, err := start(port)
	if err != nil {
		noServer(t, err)
	}
	t.Cleanup(s.terminate)
	return s
}

// DSN returns the URL of a fresh schema on s, dropped when t ends.
func (s *Server) DSN(t testing.TB) string {
	t.Helper()
	return freshSchema(t, s.base)
}

// Stop stops the container (PostgreSQL shuts down; connections break).
func (s *Server) Stop(ctx context.Context) error {
	timeout := 10 * time.Second
	return s.c.Stop(ctx, &timeout)
}

// Start starts the stopped container again and waits until PostgreSQL accepts
// connections, on the same host port.
func (s *Server) Start(ctx context.Context) error {
	if err := s.c.Start(ctx); err != nil {
		return err
	}
	return waitReady(ctx, s.base)
}

func (s *Server) terminate() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = s.c.Terminate(ctx)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// start runs a container; a non-empty hostPort binds 5432 to it on 127.0.0.1.
func start(hostPort string) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img := os.Getenv(EnvImage)
	if img == "" {
		img = DefaultImage
	}
	opts := []testcontainers.ContainerCustomizer{
		tcpostgres.WithDatabase("mqttstore"),
		tcpostgres.WithUsername("mqttstore"),
		tcpostgres.WithPassword("mqttstore"),
		tcpostgres.BasicWaitStrategies(),
	}
	if hostPort != "" {
		opts = append(opts, testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hostPort}},
			}
		}))
	}
	c, err := tcpostgres.Run(ctx, img, opts...)
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.Background())
		}
		return nil, fmt.Errorf("cannot start a container of %s: %w", img, err)
	}
	base, err := c.ConnectionString(ctx, "sslmode=disable")
	if err == nil {
		err = checkLoopback(base)
	}
	if err == nil {
		err = waitReady(ctx, base)
	}
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, fmt.Errorf("container %s: %w", img, err)
	}
	return &Server{c: c, base: base}, nil
}

// waitReady polls until a connection to dsn succeeds or ctx ends.
func waitReady(ctx context.Context, dsn string) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		if err == nil {
			err = conn.Ping(cctx)
			_ = conn.Close(cctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
