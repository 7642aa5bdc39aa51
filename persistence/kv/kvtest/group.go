package kvtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// GroupCommit checks that operations sharing group commits stay atomic and get
// their own results: 64 goroutines start together, a quarter racing to create the
// same session (exactly one wins), the rest each creating its own session and then
// applying a batch that fails on its last operation (nothing of it may land) and an
// append that succeeds.
func GroupCommit(t *testing.T, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ss := p.Sessions()
	const n = 64
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			if i%4 == 0 {
				errs[i] = ss.Create(ctx, "shared", persistence.SessionBase{})
				return
			}
			id := fmt.Sprintf("own-%d", i)
			if err := ss.Create(ctx, id, persistence.SessionBase{}); err != nil {
				errs[i] = fmt.Errorf("create: %w", err)
				return
			}
			var b persistence.Batch
			b.PacketAppend(id, persistence.ClassQoS12, &persistence.PersistedPacket{Data: []byte("doomed")})
			b.SubscriptionStore(id, persistence.Subscription{Filter: "doomed/#"})
			b.PacketAppend("missing-session", persistence.ClassQoS12, &persistence.PersistedPacket{})
			if _, err := ss.Apply(ctx, &b); !errors.Is(err, persistence.ErrNotFound) {
				errs[i] = fmt.Errorf("failing batch: %v, want ErrNotFound", err)
				return
			}
			if _, err := ss.PacketAppend(ctx, id, persistence.ClassQoS12, &persistence.PersistedPacket{Data: []byte("kept")}); err != nil {
				errs[i] = fmt.Errorf("append: %w", err)
			}
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case i%4 == 0 && err == nil:
			winners++
		case i%4 == 0 && !errors.Is(err, persistence.ErrAlreadyExists):
			t.Errorf("goroutine %d: Create of the shared session: %v, want nil or ErrAlreadyExists", i, err)
		case i%4 != 0 && err != nil:
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Errorf("%d creates of the shared session succeeded, want exactly 1", winners)
	}
	for i := range n {
		if i%4 == 0 {
			continue
		}
		id := fmt.Sprintf("own-%d", i)
		var data []string
		err := ss.PacketsForEach(ctx, id, persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
			data = append(data, string(pk.Data))
			return false, nil
		})
		subs, serr := ss.SubscriptionsLoad(ctx, id)
		if err != nil || serr != nil || len(data) != 1 || data[0] != "kept" || len(subs) != 0 {
			t.Errorf("%s holds packets %q and %d subscriptions (%v, %v); want only the packet \"kept\": the failed batch must leave nothing",
				id, data, len(subs), err, serr)
		}
	}
	if c, err := ss.Count(ctx); err != nil || c != 1+n*3/4 {
		t.Errorf("Count = %d, %v; want %d", c, err, 1+n*3/4)
	}
}
