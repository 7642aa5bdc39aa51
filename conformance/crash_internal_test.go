package conformance

import (
	"maps"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// The crash checker's verdicts, on synthesized stores: what a loss, a lost delete, a
// half-applied batch and a wholly applied one are reported as.
func TestCrashVerdicts(t *testing.T) {
	const s0, s1 = "crash/w0/s0", "crash/w0/s1"
	pkt := func(d string) *persistence.PersistedPacket {
		return &persistence.PersistedPacket{QoS: 1, Data: []byte(d)}
	}
	acked := crashOp{Steps: []crashStep{
		{K: "create", ID: s0}, {K: "create", ID: s1},
		{K: "append", ID: s0, Class: persistence.ClassQoS12, Pkt: pkt("a")},
		{K: "retain", Topic: "crash/w0/t1", Pkt: pkt("r")},
	}}
	batch := crashOp{Steps: []crashStep{
		{K: "append", ID: s0, Class: persistence.ClassQoS12, Pkt: pkt("b")},
		{K: "append", ID: s1, Class: persistence.ClassQoS12, Pkt: pkt("c")},
	}}
	newRun := func() *crashRun {
		r := &crashRun{h: CrashHarness{Writers: 1}, models: []crashModel{{}}, maxSeq: map[string]uint64{},
			history: make([][]string, 1), lastOp: []map[string]string{{}}}
		touched := map[string]bool{}
		r.models[0].apply(acked, []uint64{5}, touched)
		for k := range touched {
			r.lastOp[0][k] = acked.String()
		}
		r.maxSeq[pktPrefix(s0, persistence.ClassQoS12)] = 5
		return r
	}
	before := newRun().models[0]
	withBatch := maps.Clone(before)
	withBatch.apply(batch, []uint64{6, 7}, nil)
	half := maps.Clone(before)
	half.apply(crashOp{Steps: batch.Steps[:1]}, []uint64{6}, nil)
	lost := maps.Clone(before)
	delete(lost, pktKey(s0, persistence.ClassQoS12, 5))

	for _, c := range []struct {
		name     string
		got      crashModel
		inFlight *crashOp
		first    string // "" for a pass
	}{
		{"Unchanged", before, nil, ""},
		{"InFlightAbsent", before, &batch, ""},
		{"InFlightApplied", withBatch, &batch, ""},
		{"LostAppend", lost, &batch, "crash: kill 3 lost an acknowledged write: s crash/w0/s0|p2 00000000000000000005"},
		{"HalfApplied", half, &batch, "crash: kill 3 half-applied the operation in flight: Batch[append(crash/w0/s0"},
		{"InFlightUnexpected", withBatch, nil, "crash: kill 3: the store holds s crash/w0/s0|p2 00000000000000000006"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRun()
			err := r.checkWriter(3, 0, c.got, c.inFlight)
			switch {
			case c.first == "" && err != nil:
				t.Fatalf("checkWriter = %v, want a pass", err)
			case c.first != "" && err == nil:
				t.Fatalf("checkWriter passed, want a failure starting %q", c.first)
			case c.first != "" && !strings.HasPrefix(err.Error(), c.first):
				t.Fatalf("failure starts\n%s\nwant\n%s", strings.SplitN(err.Error(), "\n", 2)[0], c.first)
			}
		})
	}
	// A delete that was acknowledged and comes back.
	r := newRun()
	unretain := crashOp{Steps: []crashStep{{K: "unretain", Topic: "crash/w0/t1"}}}
	r.models[0].apply(unretain, nil, nil)
	r.lastOp[0][retKey("crash/w0/t1")] = unretain.String()
	err := r.checkWriter(4, 0, before, nil)
	if err == nil || !strings.HasPrefix(err.Error(), `crash: kill 4 lost an acknowledged delete: r crash/w0/t1`) {
		t.Fatalf("checkWriter = %v, want a lost delete", err)
	}
	// A delete that was acknowledged and comes back while a delete of the same
	// queue is in flight: a delete cannot add a key, so that is a lost delete,
	// not the one in flight half-applied.
	r = newRun()
	ack := crashOp{Steps: []crashStep{{K: "ack", ID: s0, Class: persistence.ClassQoS12, Seq: 5}}}
	r.models[0].apply(ack, nil, nil)
	r.lastOp[0][pktKey(s0, persistence.ClassQoS12, 5)] = ack.String()
	clearQueue := crashOp{Steps: []crashStep{{K: "clear", ID: s0, Class: persistence.ClassQoS12}}}
	err = r.checkWriter(5, 0, before, &clearQueue)
	if err == nil || !strings.HasPrefix(err.Error(), `crash: kill 5 lost an acknowledged delete: s crash/w0/s0|p2 00000000000000000005`) {
		t.Fatalf("checkWriter = %v, want a lost delete", err)
	}
}

func TestRunPattern(t *testing.T) {
	if got, want := runPattern("TestCrash/sync=always+x"), `^TestCrash$/^sync=always\+x$`; got != want {
		t.Errorf("runPattern = %q, want %q", got, want)
	}
}
