package conformance

import "syscall"

// childAttr makes a crash child die with the test process: a test binary killed by
// its timeout must not leave a child writing to the store.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
