package main

import "testing"

func TestBrokerURL(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		remote bool
		want   string
		ok     bool
	}{
		{"127.0.0.1:1883", false, "tcp://127.0.0.1:1883", true},
		{"tcp://127.0.0.1:1883", false, "tcp://127.0.0.1:1883", true},
		{"localhost:1883", false, "tcp://localhost:1883", true},
		{"[::1]:1883", false, "tcp://[::1]:1883", true},
		{"127.5.6.7:1", false, "tcp://127.5.6.7:1", true},
		{"10.0.0.1:1883", false, "", false},
		{"example.com:1883", false, "", false},
		{"0.0.0.0:1883", false, "", false},
		{"10.0.0.1:1883", true, "tcp://10.0.0.1:1883", true},
		{"127.0.0.1", false, "", false},
		{"127.0.0.1:", false, "", false},
		{"ws://127.0.0.1:1883", false, "", false},
	} {
		got, err := brokerURL(tc.addr, tc.remote)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("brokerURL(%q, %v) = %q, %v; want %q, ok=%v", tc.addr, tc.remote, got, err, tc.want, tc.ok)
		}
	}
}

func TestConfigRefusesUnbounded(t *testing.T) {
	base := config{Addr: "127.0.0.1:1", Phase: "run", Pubs: 1, Subs: 1, QoS: 1, Timeout: 1}
	c := base
	if err := c.check(); err == nil {
		t.Fatal("a run without -count or -duration accepted")
	}
	for _, mut := range []func(*config){
		func(c *config) { c.Phase = "nope" },
		func(c *config) { c.QoS = 3 },
		func(c *config) { c.Count = 10; c.Timeout = 0 },
		func(c *config) { c.Count = 10; c.Phase = "drain" },
		func(c *config) { c.Count = 10; c.Phase = "publish"; c.State = "x"; c.Clean = true },
		func(c *config) { c.Count = 10; c.Pubs = 0 },
	} {
		c := base
		mut(&c)
		if err := c.check(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	c = base
	c.Count = 10
	if err := c.check(); err != nil || c.Size != payloadHeader {
		t.Fatalf("minimal run refused (%v) or size not raised to the header (%d)", err, c.Size)
	}
}

func TestMainRefusesRemoteAndBadFlags(t *testing.T) {
	var out, errb discard
	if code := mainErr([]string{"-addr", "192.0.2.1:1883", "-count", "1", "-timeout", "1s"}, &out, &errb); code != 2 {
		t.Fatalf("remote address: exit %d, want 2", code)
	}
	if code := mainErr([]string{"-qos", "3"}, &out, &errb); code != 2 {
		t.Fatalf("qos 3: exit %d, want 2", code)
	}
	if code := mainErr([]string{"extra"}, &out, &errb); code != 2 {
		t.Fatalf("extra argument: exit %d, want 2", code)
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }
