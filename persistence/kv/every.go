package kv

import (
	"sync"
	"time"
)

// Ticker runs a driver's housekeeping (periodic fsync, value-log GC) on its own
// goroutine. A driver stops it before closing its engine, also when a test abandons
// the engine without the store's Close.
type Ticker struct {
	quit chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Every starts calling fn every interval. fn receives a channel that is closed when
// Stop is called, so a long run can end early.
func Every(interval time.Duration, fn func(quit <-chan struct{})) *Ticker {
	t := &Ticker{quit: make(chan struct{})}
	t.wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-t.quit:
				return
			case <-tick.C:
				fn(t.quit)
			}
		}
	})
	return t
}

// Stop ends the loop and waits for a run in progress. It is idempotent and a nil
// Ticker is stopped already.
func (t *Ticker) Stop() {
	if t == nil {
		return
	}
	t.once.Do(func() { close(t.quit) })
	t.wg.Wait()
}
