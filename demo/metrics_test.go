package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// sample is one line of the Prometheus text format.
type sample struct {
	labels string // as written between the braces, "" for none
	value  float64
}

// scrape reads url and returns its samples by metric name.
func scrape(t *testing.T, ctx context.Context, url string) map[string][]sample {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %s, Content-Type %q\n%s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	out := map[string][]sample{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			t.Fatalf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		name, labels := line[:sp], ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], strings.TrimSuffix(name[i+1:], "}")
		}
		out[name] = append(out[name], sample{labels, v})
	}
	return out
}

// sum adds the values of name's samples whose labels contain every one of want.
func sum(m map[string][]sample, name string, want ...string) (total float64, found bool) {
	for _, s := range m[name] {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s.labels, w)
		}
		if ok {
			total += s.value
			found = true
		}
	}
	return total, found
}

// TestMetricsEndpoint runs the program with -metrics, makes MQTT traffic with real
// clients and checks the store's and the broker's series on /metrics.
func TestMetricsEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs syncBuffer
	t.Cleanup(func() { t.Log("\n" + logs.String()) })
	store := "bolt://" + filepath.Join(t.TempDir(), "state.db")
	addrs, stop := started(t, &Command{Stderr: &logs},
		"-store", store, "-listen", "127.0.0.1:0", "-metrics", "127.0.0.1:0", "-max-queued", "3", "-log-level", "warn")
	if addrs.Metrics == nil {
		t.Fatal("no metrics address")
	}
	broker := addrs.MQTT.String()

	// A persistent subscriber that goes away: its queue holds 3 messages (-max-queued)
	// and the other 2 are dropped.
	off, _, err := dial(ctx, broker, "metrics-offline", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokenErr(ctx, off.Subscribe("m/#", 1, nil)); err != nil {
		t.Fatal(err)
	}
	off.Disconnect(100)
	// Wait for the broker to see it gone, so that no message reaches it directly.
	metricsURL := "http://" + addrs.Metrics.String() + "/metrics"
	for {
		if v, found := sum(scrape(t, ctx, metricsURL), "mqttstore_broker_connected"); found && v == 0 {
			break
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the broker still counts the subscriber that disconnected as connected")
		}
	}
	// A subscriber that stays: it receives all 5.
	var got atomic.Int64
	arrived := make(chan struct{}, 16)
	live, _, err := dial(ctx, broker, "metrics-live", true, func(mqtt.Client, mqtt.Message) {
		got.Add(1)
		arrived <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Disconnect(100)
	if err := tokenErr(ctx, live.Subscribe("m/#", 1, nil)); err != nil {
		t.Fatal(err)
	}
	pub, _, err := dial(ctx, broker, "metrics-pub", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := tokenErr(ctx, pub.Publish("m/x", 1, false, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	pub.Disconnect(100)
	for got.Load() < 5 {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatalf("the live subscriber got %d of 5 messages", got.Load())
		}
	}

	m := scrape(t, ctx, metricsURL)
	atLeast := func(name string, min float64, labels ...string) {
		t.Helper()
		v, found := sum(m, name, labels...)
		if !found {
			t.Errorf("no series %s%v", name, labels)
		} else if v < min {
			t.Errorf("%s%v = %v, want at least %v", name, labels, v, min)
		}
	}
	exactly := func(name string, want float64) {
		t.Helper()
		if v, found := sum(m, name); !found || v != want {
			t.Errorf("%s = %v (found %v), want %v", name, v, found, want)
		}
	}
	// The store, through otelstore: every call the broker made.
	atLeast("mqttstore_store_calls_total", 1, `op="Apply"`)
	atLeast("mqttstore_store_calls_total", 1, `op="Info"`) // the program's own call
	atLeast("mqttstore_store_duration_seconds_count", 1, `op="Apply"`)
	atLeast("mqttstore_store_duration_seconds_bucket", 1, `op="Apply"`, `le="+Inf"`)
	atLeast("mqttstore_store_batch_size_count", 1, `op="Apply"`)
	atLeast("mqttstore_store_batch_size_sum", 1, `op="Apply"`)
	atLeast("mqttstore_store_commits_total", 1)
	atLeast("mqttstore_store_commit_duration_seconds_count", 1)
	// The broker's figures.
	atLeast("mqttstore_broker_connections_total", 3)
	atLeast("mqttstore_broker_connected", 1) // the live subscriber, and maybe the publisher on its way out
	atLeast("mqttstore_broker_sessions", 2)
	exactly("mqttstore_broker_messages_in_total", 5)
	atLeast("mqttstore_broker_messages_out_total", 5)
	exactly("mqttstore_broker_messages_queued", 3)
	atLeast("mqttstore_broker_messages_queued_size_bytes", 3)
	exactly("mqttstore_broker_messages_dropped_total", 2)
	exactly("mqttstore_broker_storage_errors_total", 0)
	atLeast("mqttstore_broker_messages_inflight", 0)
	// The Go runtime's own.
	atLeast("go_goroutines", 1)
	if t.Failed() {
		var names []string
		for n := range m {
			names = append(names, n)
		}
		t.Logf("series: %v", names)
	}

	if code := stop(); code != 0 {
		t.Fatalf("exit status %d after a clean shutdown", code)
	}
}
