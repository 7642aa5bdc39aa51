package kv

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Ids and filters chosen so that naive concatenation would collide: "a"+"bc" and
// "ab"+"c", delimiters, NUL and invalid UTF-8.
var (
	testIDs     = []string{"", "a", "ab", "a:", "a:b", "a\x00", "a\x00b", "\x00", "b/c", "\xff\xfe", "a/b"}
	testFilters = []string{"c", "bc", "b:c", "b", "\x00b", "/c", "#", "+/x", "\xff"}
)

func TestSubscriptionKeysAreUnambiguous(t *testing.T) {
	seen := map[string][2]string{}
	for _, id := range testIDs {
		for _, f := range testFilters {
			k := string(subKey(id, f))
			if prev, dup := seen[k]; dup {
				t.Fatalf("subKey(%q, %q) == subKey(%q, %q)", id, f, prev[0], prev[1])
			}
			seen[k] = [2]string{id, f}
		}
	}
	// A session's prefix covers its own subscriptions only.
	for _, id := range testIDs {
		p := subPrefix(id)
		for _, other := range testIDs {
			for _, f := range testFilters {
				if got := bytes.HasPrefix(subKey(other, f), p); got != (other == id) {
					t.Errorf("subKey(%q, %q) under subPrefix(%q) = %v", other, f, id, got)
				}
			}
		}
	}
}

func TestTablesDoNotOverlap(t *testing.T) {
	// Single-table keys put the id last; the tag alone keeps tables apart.
	keys := [][]byte{sessionKey("x"), headerKey("x"), stateKey("x"), expiryKey("x"), subKey("x", "f"),
		packetKey(1, 2), retainedKey(3, "t"), garbageKey(packetPrefix(1)), keyInfo, keySeq}
	tags := map[byte]bool{}
	for _, k := range keys[:9] {
		if tags[k[0]] {
			t.Errorf("tag %q used twice", k[0])
		}
		tags[k[0]] = true
	}
}

func TestPacketKeysSortInFIFOOrder(t *testing.T) {
	seqs := []uint64{1, 2, 255, 256, 1 << 32, 1<<64 - 1}
	for i := 1; i < len(seqs); i++ {
		if bytes.Compare(packetKey(7, seqs[i-1]), packetKey(7, seqs[i])) >= 0 {
			t.Errorf("packetKey(7, %d) does not sort before packetKey(7, %d)", seqs[i-1], seqs[i])
		}
		if seq, err := packetSeq(packetKey(7, seqs[i])); err != nil || seq != seqs[i] {
			t.Errorf("packetSeq round trip of %d = %d, %v", seqs[i], seq, err)
		}
	}
	if _, err := packetSeq([]byte("p123")); !errors.Is(err, driver.ErrBrokenEntry) {
		t.Errorf("packetSeq of a short key = %v, want ErrBrokenEntry", err)
	}
}

func TestExpiryKeysSortByDeadline(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999_999_999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2030, 1, 1, 0, 0, 0, 1, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a := expIndexKey(deadlineBytes(times[i-1]), 99, "zzz")
		b := expIndexKey(deadlineBytes(times[i]), 1, "a")
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("deadline %v does not sort before %v", times[i-1], times[i])
		}
	}
	stamp, id, err := parseExpIndexKey(expIndexKey(deadlineBytes(times[4]), 42, "a\x00b"))
	if err != nil || stamp != 42 || id != "a\x00b" {
		t.Errorf("parseExpIndexKey = %d, %q, %v", stamp, id, err)
	}
	if _, _, err := parseExpIndexKey([]byte("x12")); !errors.Is(err, driver.ErrBrokenEntry) {
		t.Errorf("parseExpIndexKey of a short key = %v, want ErrBrokenEntry", err)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := header{stamp: 9, deadline: deadlineBytes(time.Unix(5, 6))}
	for i := range h.qid {
		h.qid[i] = uint64(100 + i)
	}
	got, err := decodeHeader(h.encode())
	if err != nil || got != h {
		t.Fatalf("decodeHeader(encode(%+v)) = %+v, %v", h, got, err)
	}
	for _, b := range [][]byte{nil, {1, 2, 3}, append(h.encode(), 0)} {
		if _, err := decodeHeader(b); !errors.Is(err, driver.ErrBrokenEntry) {
			t.Errorf("decodeHeader of %d bytes = %v, want ErrBrokenEntry", len(b), err)
		}
	}
	if _, err := readU64([]byte{1}, "x"); !errors.Is(err, driver.ErrBrokenEntry) {
		t.Errorf("readU64 of 1 byte = %v, want ErrBrokenEntry", err)
	}
}

func TestSessionAndSubscriptionKeysSortAlike(t *testing.T) {
	for _, a := range testIDs {
		id, rest, err := parseLenID(sessionKey(a))
		if err != nil || id != a || len(rest) != 0 {
			t.Errorf("parseLenID(sessionKey(%q)) = %q, %q, %v", a, id, rest, err)
		}
		for _, b := range testIDs {
			s := bytes.Compare(sessionKey(a)[1:], sessionKey(b)[1:])
			u := bytes.Compare(subKey(a, "f")[1:], subKey(b, "f")[1:])
			if (s < 0) != (u < 0) {
				t.Errorf("sessions %q and %q sort differently from their subscriptions", a, b)
			}
		}
	}
	for _, bad := range [][]byte{{tagSession}, {tagSession, 5, 'a'}, {tagSession, 0xff}} {
		if _, _, err := parseLenID(bad); !errors.Is(err, driver.ErrBrokenEntry) {
			t.Errorf("parseLenID(%q) = %v, want ErrBrokenEntry", bad, err)
		}
	}
}
