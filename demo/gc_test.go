package demo

import "testing"

func TestGCPercentFor(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 400},        // before the first collection
		{10 * mb, 400},  // 50 MB target: under the soft limit
		{25 * mb, 400},  // 125 MB: still under
		{32 * mb, 300},  // lowered so that the target is the limit (128 MB)
		{50 * mb, 156},  // 128 MB target
		{64 * mb, 100},  // Go's default from half the limit on
		{500 * mb, 100}, // never below it: the limit is soft
	} {
		if got := gcPercentFor(400, 128*mb, tc.live); got != tc.want {
			t.Errorf("gcPercentFor(400, 128 MB, %d MB) = %d, want %d", tc.live/mb, got, tc.want)
		}
	}
}

func TestGCPolicyOffWithEnvironment(t *testing.T) {
	t.Setenv("GOGC", "200")
	if p := startGC(400, 128<<20); p != nil {
		p.stop()
		t.Fatal("policy started although GOGC is set")
	}
	if p := startGC(0, 128<<20); p != nil {
		p.stop()
		t.Fatal("policy started with -gc-percent 0")
	}
}
