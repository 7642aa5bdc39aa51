package main

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
)

func TestAddrList(t *testing.T) {
	got, err := addrList("", "127.0.0.1:1", false)
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:1"}) {
		t.Fatalf("default: %v, %v", got, err)
	}
	got, err = addrList("127.0.0.1:1, tcp://localhost:2,[::1]:3", "127.0.0.1:9", false)
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:1", "localhost:2", "[::1]:3"}) {
		t.Fatalf("list: %v, %v", got, err)
	}
	for _, bad := range []string{"127.0.0.1:1,10.0.0.1:2", "127.0.0.1:1,,127.0.0.1:2", "127.0.0.1", "ws://127.0.0.1:1", ","} {
		if got, err := addrList(bad, "127.0.0.1:9", false); !errors.Is(err, errBadAddr) {
			t.Errorf("addrList(%q) = %v, %v; want errBadAddr", bad, got, err)
		}
	}
	if _, err := addrList("127.0.0.1:1,10.0.0.1:2", "", true); err != nil {
		t.Fatalf("-allow-remote: %v", err)
	}
}

// TestRouteSpreadsAndFailsOver: client k starts on address k mod n and, after losing
// a connection, tries the next address first and its lost one last.
func TestRouteSpreadsAndFailsOver(t *testing.T) {
	list := []string{"a:1", "b:1", "c:1"}
	for k, want := range [][]string{
		{"a:1", "b:1", "c:1"},
		{"b:1", "c:1", "a:1"},
		{"c:1", "a:1", "b:1"},
		{"a:1", "b:1", "c:1"},
		{"b:1", "c:1", "a:1"},
	} {
		if got := newRoute(list, k, nil).first(); !slices.Equal(got, want) {
			t.Errorf("client %d: first %v, want %v", k, got, want)
		}
	}
	if !slices.Equal(list, []string{"a:1", "b:1", "c:1"}) {
		t.Fatalf("newRoute changed its list: %v", list)
	}
	var failovers atomic.Int64
	rt := newRoute(list, 1, &failovers)
	for _, tc := range []struct {
		lost string
		want []string
	}{
		{"b:1", []string{"c:1", "a:1", "b:1"}},
		{"c:1", []string{"a:1", "b:1", "c:1"}},
		{"a:1", []string{"b:1", "c:1", "a:1"}},
		{"", []string{"b:1", "c:1", "a:1"}},
		{"x:1", []string{"b:1", "c:1", "a:1"}},
	} {
		if got := rt.after(tc.lost); !slices.Equal(got, tc.want) {
			t.Errorf("after(%q) = %v, want %v", tc.lost, got, tc.want)
		}
	}
	if got := newRoute([]string{"a:1"}, 7, nil).after("a:1"); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("single address: after = %v", got)
	}

	for _, a := range []string{"b:1", "b:1", "c:1", "c:1", "b:1"} {
		rt.connected(a)
	}
	if n := failovers.Load(); n != 2 || rt.current() != "b:1" {
		t.Fatalf("failovers %d (want 2), current %q", n, rt.current())
	}
}
