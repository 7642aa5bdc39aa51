package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// noDockerError reports that no Docker engine answers.
type noDockerError struct{ tried []string }

func (e *noDockerError) Error() string {
	return "no Docker engine answers (tried " + strings.Join(e.tried, ", ") + ")"
}

var docker struct {
	once sync.Once
	err  error
}

// setupDocker finds a Docker engine and prepares testcontainers-go's settings for
// it, once per binary: a test needs nothing but a running engine.
//
//   - The engine: $DOCKER_HOST when set, else the first socket that answers among
//     /var/run/docker.sock, $XDG_RUNTIME_DIR/docker.sock (rootless) and
//     ~/.docker/run/docker.sock (Docker Desktop).
//   - TESTCONTAINERS_HOST_OVERRIDE, when unset and the engine is local, becomes
//     127.0.0.1: otherwise testcontainers-go may dial the default gateway.
//   - TESTCONTAINERS_RYUK_DISABLED, when unset, becomes true: the reaper's image
//     would have to be pulled from a registry; [Main] and test cleanups terminate
//     the containers instead (a killed test binary leaves its container running:
//     `docker ps --filter label=org.testcontainers` lists them).
func setupDocker() error {
	docker.once.Do(func() { docker.err = findDocker() })
	return docker.err
}

func findDocker() error {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if err := ping(h); err != nil {
			return &noDockerError{tried: []string{"DOCKER_HOST=" + h + ": " + err.Error()}}
		}
		if strings.HasPrefix(h, "unix://") {
			setDefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
		}
		setDefault("TESTCONTAINERS_RYUK_DISABLED", "true")
		return nil
	}
	socks := []string{"/var/run/docker.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		socks = append(socks, filepath.Join(d, "docker.sock"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		socks = append(socks, filepath.Join(home, ".docker", "run", "docker.sock"))
	}
	var tried []string
	for _, s := range socks {
		// os.Stat, unlike a dial, is recorded by the test cache: a socket that
		// appears or changes makes `go test` run the tests again.
		if _, err := os.Stat(s); err != nil {
			tried = append(tried, s)
			continue
		}
		h := "unix://" + s
		if err := ping(h); err != nil {
			tried = append(tried, s+": "+err.Error())
			continue
		}
		setDefault("DOCKER_HOST", h)
		setDefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
		setDefault("TESTCONTAINERS_RYUK_DISABLED", "true")
		return nil
	}
	return &noDockerError{tried: tried}
}

func setDefault(k, v string) {
	if _, ok := os.LookupEnv(k); !ok {
		_ = os.Setenv(k, v)
	}
}

// ping asks the engine at host (unix:// or tcp://) for /_ping.
func ping(host string) error {
	u, err := url.Parse(host)
	if err != nil {
		return err
	}
	tr := &http.Transport{}
	base := "http://docker"
	switch u.Scheme {
	case "unix":
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", u.Path)
		}
	case "tcp", "http":
		base = "http://" + u.Host
	default:
		return nil // ssh:// and the like: let testcontainers-go try
	}
	cl := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	defer tr.CloseIdleConnections()
	resp, err := cl.Get(base + "/_ping")
	if err != nil {
		return fmt.Errorf("%w", unwrapURLError(err))
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_ping answered %s", resp.Status)
	}
	return nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// notice shows msg once per `go test` run, however many packages skipped their
// PostgreSQL tests. `go test ./...` shows nothing a passing package prints, so
// besides stdout (seen with -v) the line goes to the terminal (/dev/tty), where
// there is one. A marker file named after the go command's process makes the
// first package to skip the only one to print there.
func notice(msg string) {
	line := "pgtest: " + msg
	fmt.Println(line)
	if testing.Verbose() {
		return
	}
	dir := os.TempDir()
	old, _ := filepath.Glob(filepath.Join(dir, "mqttstore-pgtest-notice-*"))
	for _, m := range old {
		if fi, err := os.Stat(m); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			_ = os.Remove(m)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "mqttstore-pgtest-notice-"+parentID()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return // another package of this run printed it
	}
	_ = f.Close()
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(tty, line)
		_ = tty.Close()
	}
}

// uncacheable keeps the go command from caching this test binary's result: it
// opens a file of this module modified just now, which the test cache refuses to
// trust (files outside the module are not looked at). A skip for want of a server
// must not be replayed from the cache, silently, once a server is there. The file,
// next to this source, is ignored by git.
func uncacheable() {
	_, src, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(src) {
		return
	}
	p := filepath.Join(filepath.Dir(src), ".uncached")
	if err := os.WriteFile(p, []byte("written by pgtest so that go test does not cache a skip\n"), 0o644); err != nil {
		return
	}
	if f, err := os.Open(p); err == nil {
		_ = f.Close()
	}
}

// parentID names the process that ran this test binary (the go command): its pid
// and, where /proc tells it, its start time, so a reused pid is another name.
func parentID() string {
	ppid := os.Getppid()
	id := fmt.Sprint(ppid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", ppid)); err == nil {
		// Field 22 is the start time; fields after the command's closing ')'.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 19 {
				id += "-" + f[19]
			}
		}
	}
	return id
}
