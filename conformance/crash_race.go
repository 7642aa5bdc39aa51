//go:build race

package conformance

// raceEnabled makes the crash test kill its children sooner under the race
// detector, which slows every child down several times, so that a run still makes
// its kills within the budget.
const raceEnabled = true
