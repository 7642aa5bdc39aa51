package mem_test

import (
	"context"
	"fmt"
	"log"

	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/mem"
)

// Opening an in-memory store by URL, queueing a message for a session and reading
// the queue back.
func Example() {
	ctx := context.Background()
	store, err := persistence.Open(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ss := store.Sessions()
	if err := ss.Create(ctx, "client-1", persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		log.Fatal(err)
	}
	// Data holds the PUBLISH packet as it goes over the network.
	msg := &persistence.PersistedPacket{QoS: 1, ProtocolVersion: 5, Data: []byte{0x32, 0x00}}
	if _, err := ss.PacketAppend(ctx, "client-1", persistence.ClassQoS12, msg); err != nil {
		log.Fatal(err)
	}
	err = ss.PacketsForEach(ctx, "client-1", persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
		fmt.Printf("QoS %d, %d bytes\n", p.QoS, len(p.Data))
		return true, nil // delivered: delete it
	})
	if err != nil {
		log.Fatal(err)
	}
	n, err := ss.PacketCount(ctx, "client-1", persistence.ClassQoS12)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("left in the queue:", n)
	// Output:
	// QoS 1, 2 bytes
	// left in the queue: 0
}
