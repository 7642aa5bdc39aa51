package main

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestTargetSpreadsMessages(t *testing.T) {
	// 16 publishers and 16 subscribers pair up; with more subscribers than
	// publishers each subscriber still gets an equal share.
	for i := 0; i < 16; i++ {
		for seq := uint64(0); seq < 5; seq++ {
			if got := target(16, 16, i, seq); got != i {
				t.Fatalf("target(16,16,%d,%d) = %d", i, seq, got)
			}
		}
	}
	per := make([]int, 100)
	for i := 0; i < 4; i++ {
		for seq := uint64(0); seq < 250; seq++ {
			per[target(4, 100, i, seq)]++
		}
	}
	for j, n := range per {
		if n != 10 {
			t.Fatalf("subscriber %d gets %d of 1000 messages, want 10", j, n)
		}
	}
}

func TestTrackerOwedOnlyAfterAck(t *testing.T) {
	now := time.Now()
	tr := newTracker(2, 2, false)
	// Arrival before the acknowledgement (the broker forwards before it PUBACKs):
	// the message must not become outstanding when the ack comes in later.
	tr.Received(0, 0, 0, now, now)
	tr.Acked(0, 0)
	if n := tr.Outstanding(); n != 0 {
		t.Fatalf("outstanding after arrival then ack = %d", n)
	}
	tr.Acked(1, 0) // owed to subscriber 1, not yet arrived
	tr.Acked(1, 0) // a second ack of the same message changes nothing
	if n := tr.Outstanding(); n != 1 {
		t.Fatalf("outstanding = %d, want 1", n)
	}
	w := tr.Watch(1)
	select {
	case <-w:
		t.Fatal("watch closed before arrival")
	default:
	}
	tr.Received(1, 1, 0, now, now)
	select {
	case <-w:
	default:
		t.Fatal("watch not closed after the last owed arrival")
	}
	// Published but never acknowledged (the publisher was cut off): not owed, so its
	// absence is not missing, and its arrival is fine too.
	tr.Received(0, 0, 1, now, now)
	v := tr.Verify()
	if v.Owed != 2 || v.Missing != 0 || v.Duplicates != 0 || v.Misrouted != 0 {
		t.Fatalf("verification = %+v", v)
	}
}

func TestTrackerMissingDuplicatesMisrouted(t *testing.T) {
	now := time.Now()
	tr := newTracker(1, 2, false)
	for seq := uint64(0); seq < 10; seq++ {
		tr.Acked(0, seq)
	}
	for seq := uint64(0); seq < 10; seq++ {
		if seq == 4 || seq == 7 {
			continue // lost
		}
		tr.Received(target(1, 2, 0, seq), 0, seq, now, now)
	}
	tr.Received(target(1, 2, 0, 2), 0, 2, now, now) // delivered twice
	tr.Received(1, 0, 0, now, now)                  // seq 0 goes to subscriber 0
	tr.Received(0, 5, 0, now, now)                  // no publisher 5
	tr.Stale()
	v := tr.Verify()
	if v.Owed != 10 || v.Missing != 2 || v.Duplicates != 1 || v.Misrouted != 1 || v.Stale != 2 {
		t.Fatalf("verification = %+v", v)
	}
	if len(v.Examples) != 2 {
		t.Fatalf("examples = %q", v.Examples)
	}
	if n := tr.Outstanding(); n != 2 {
		t.Fatalf("outstanding = %d, want 2", n)
	}
	res := result{Verified: true, QoS: 1, verification: v}
	if ok, _ := judge(res); ok {
		t.Fatal("missing messages pass")
	}
	res.verification.Missing = 0
	res.verification.Misrouted = 0
	if ok, why := judge(res); !ok {
		t.Fatalf("duplicates at QoS 1 fail: %s", why)
	}
	res.QoS = 2
	if ok, _ := judge(res); ok {
		t.Fatal("duplicates at QoS 2 pass")
	}
	res.Verified = false
	res.verification = verification{Missing: 3}
	if ok, why := judge(res); !ok {
		t.Fatalf("unverified run fails: %s", why)
	}
}

func TestTrackerFanout(t *testing.T) {
	now := time.Now()
	tr := newTracker(2, 3, true)
	tr.Acked(0, 0)
	tr.Acked(1, 0)
	if n := tr.Outstanding(); n != 6 {
		t.Fatalf("outstanding = %d, want 6", n)
	}
	for j := 0; j < 3; j++ {
		tr.Received(j, 0, 0, now, now)
	}
	v := tr.Verify()
	if v.Owed != 6 || v.Missing != 3 || v.Misrouted != 0 {
		t.Fatalf("verification = %+v", v)
	}
}

func TestStateRoundTrip(t *testing.T) {
	tr := newTracker(3, 1, false)
	for _, seq := range []uint64{0, 1, 2, 5, 6, 9} {
		tr.Acked(0, seq)
	}
	tr.Acked(2, 0)
	want := [][][2]uint64{{{0, 3}, {5, 7}, {9, 10}}, nil, {{0, 1}}}
	got := tr.ackedRanges()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ranges = %v, want %v", got, want)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	st := runState{RunID: 42, Prefix: "p", Pubs: 3, Subs: 1, QoS: 1, Acked: got}
	if err := writeState(path, st); err != nil {
		t.Fatal(err)
	}
	back, err := readState(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.RunID != 42 || !reflect.DeepEqual(back.Acked, want) {
		t.Fatalf("read back %+v", back)
	}
	st.Acked = st.Acked[:1]
	if err := writeState(path, st); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(path); err == nil {
		t.Fatal("inconsistent state file accepted")
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	buf := make([]byte, 64)
	sent := time.Unix(1700000000, 123456789)
	encodePayload(buf, 7, 3, 99, sent)
	run, pub, seq, at, ok := decodePayload(buf)
	if !ok || run != 7 || pub != 3 || seq != 99 || !at.Equal(sent) {
		t.Fatalf("decoded %d %d %d %v %v", run, pub, seq, at, ok)
	}
	if _, _, _, _, ok := decodePayload(buf[:payloadHeader-1]); ok {
		t.Fatal("short payload accepted")
	}
}
