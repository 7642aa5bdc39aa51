package tool

// SetCommitHook makes every committed copy batch call f (tests only).
func SetCommitHook(f func(n int)) { testHookCommit = f }

// MarkerID is the id of the copy progress marker session.
const MarkerID = markerID
