//go:build !linux

package conformance

import "syscall"

// childAttr: only Linux kills a child with its parent; elsewhere a lost child stops
// by itself after crashChildMax.
func childAttr() *syscall.SysProcAttr { return nil }
