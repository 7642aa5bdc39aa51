package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	_ "github.com/mqttstore/mqttstore/providers/mem" // registers "mem"
)

// Open a store by URL, create a session and queue a message for it.
func ExampleOpen() {
	ctx := context.Background()
	store, err := persistence.Open(ctx, "mem://")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	sessions := store.Sessions()
	if err := sessions.Create(ctx, "client-1", persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		fmt.Println(err)
		return
	}
	msg := &persistence.PersistedPacket{QoS: 1, ProtocolVersion: 5, Data: []byte{0x32, 0x00}}
	if _, err := sessions.PacketAppend(ctx, "client-1", persistence.ClassQoS12, msg); err != nil {
		fmt.Println(err)
		return
	}
	n, _ := sessions.PacketCount(ctx, "client-1", persistence.ClassQoS12)
	fmt.Println("queued:", n)

	// A session that was never created is not created implicitly.
	_, err = sessions.PacketAppend(ctx, "nobody", persistence.ClassQoS12, msg)
	fmt.Println(errors.Is(err, persistence.ErrNotFound))
	// Output:
	// queued: 1
	// true
}

// Queue one message for two subscribers in one atomic commit, as a broker does before
// it acknowledges the publisher.
func ExampleSessions_Apply() {
	ctx := context.Background()
	store, _ := persistence.Open(ctx, "mem://")
	defer store.Close()
	sessions := store.Sessions()

	var b persistence.Batch
	b.Create("a", persistence.SessionBase{}).Create("b", persistence.SessionBase{})
	msg := &persistence.PersistedPacket{QoS: 1, Data: []byte("payload")}
	b.PacketAppend("a", persistence.ClassQoS12, msg).PacketAppend("b", persistence.ClassQoS12, msg)
	seqs, err := sessions.Apply(ctx, &b)
	fmt.Println(len(seqs), err)

	// One bad operation and nothing of the batch is written.
	b.Reset()
	b.PacketAppend("a", persistence.ClassQoS12, msg).PacketAppend("missing", persistence.ClassQoS12, msg)
	_, err = sessions.Apply(ctx, &b)
	n, _ := sessions.PacketCount(ctx, "a", persistence.ClassQoS12)
	fmt.Println(errors.Is(err, persistence.ErrNotFound), n)
	// Output:
	// 2 <nil>
	// true 1
}

// Read a queue in order and delete what was delivered, stopping early.
func ExampleSessions_PacketsForEach() {
	ctx := context.Background()
	store, _ := persistence.Open(ctx, "mem://")
	defer store.Close()
	sessions := store.Sessions()
	_ = sessions.Create(ctx, "c", persistence.SessionBase{})
	for _, payload := range []string{"one", "two", "three"} {
		_, _ = sessions.PacketAppend(ctx, "c", persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte(payload)})
	}

	delivered := 0
	err := sessions.PacketsForEach(ctx, "c", persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
		if delivered == 2 {
			return false, persistence.ErrStopIteration // stop without an error
		}
		delivered++
		fmt.Println("deliver", string(p.Data))
		return true, nil // delete it from the queue
	})
	left, _ := sessions.PacketCount(ctx, "c", persistence.ClassQoS12)
	fmt.Println(err, left)
	// Output:
	// deliver one
	// deliver two
	// <nil> 1
}

// Load the retained messages a new subscription matches.
func ExampleRetained_LoadMatching() {
	ctx := context.Background()
	store, _ := persistence.Open(ctx, "mem://")
	defer store.Close()
	retained := store.Retained()
	for _, topic := range []string{"site/1/temp", "site/2/temp", "site/2/hum"} {
		_ = retained.Put(ctx, topic, &persistence.PersistedPacket{Data: []byte(topic)})
	}
	n := 0
	_ = retained.LoadMatching(ctx, []string{"site/+/temp"}, func(m *persistence.RetainedMessage) error {
		n++
		return nil
	})
	fmt.Println(n)
	// Output: 2
}

// Check a store URL without opening anything, then open it.
func ExampleNewConnector() {
	ctx := context.Background()
	if _, err := persistence.NewConnector("mem://?bogus=1"); err != nil {
		fmt.Println(errors.Is(err, persistence.ErrInvalidConfig))
	}
	c, err := persistence.NewConnector("mem://")
	if err != nil {
		fmt.Println(err)
		return
	}
	store, err := persistence.OpenConnector(ctx, c)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	info, _ := store.Info(ctx)
	fmt.Println(info.Driver)
	// Output:
	// true
	// mem
}

// aliasDriver shows the shape of a driver: OpenConnector parses the URL without I/O
// and Connect opens the store. A real driver implements driver.Conn itself; this
// one hands the work to mem.
type aliasDriver struct{}

func (aliasDriver) OpenConnector(u *url.URL) (driver.Connector, error) {
	o := driver.NewOptions(u.Query())
	greeting := o.String("greeting", "hello")
	if err := o.Err(); err != nil {
		return nil, err
	}
	inner, err := persistence.NewConnector("mem://")
	if err != nil {
		return nil, err
	}
	return aliasConnector{inner: inner, greeting: greeting}, nil
}

type aliasConnector struct {
	inner    driver.Connector
	greeting string
}

func (c aliasConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	env.Logger.Info(c.greeting)
	return c.inner.Connect(ctx, env)
}

// Register a driver under a URL scheme; the conformance package proves it right
// (conformance.Run from the driver's tests).
func ExampleRegister() {
	persistence.Register("example-alias", aliasDriver{})
	ctx := context.Background()

	_, err := persistence.Open(ctx, "example-alias://?colour=red")
	fmt.Println(errors.Is(err, persistence.ErrInvalidConfig))

	store, err := persistence.Open(ctx, "example-alias://?greeting=hi")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	fmt.Println(store.Sessions().Create(ctx, "s", persistence.SessionBase{}))
	// Output:
	// true
	// <nil>
}
