package broker

import (
	"context"
	"errors"
)

// ErrNotAuthorized may be returned (wrapped or not) by Hooks.Authenticate to refuse
// a client as "not authorized" rather than "bad user name or password".
var ErrNotAuthorized = errors.New("broker: not authorized")

// Hooks lets the application decide who may connect, publish and subscribe, in the
// spirit of Aedes's authenticate/authorizePublish/authorizeSubscribe handlers. A
// nil func allows everything. Hooks run on the client's connection goroutine with
// a context that ends with the connection; they must be safe for concurrent use.
type Hooks struct {
	// Authenticate is called for each CONNECT. A non-nil error refuses the
	// connection: CONNACK "not authorized" when it matches ErrNotAuthorized,
	// "bad user name or password" otherwise.
	Authenticate func(ctx context.Context, c ClientInfo, username string, password []byte) error
	// AuthorizePublish is called for each PUBLISH (not for wills, which were
	// authorized with the CONNECT). A non-nil error drops the message; a 5.0
	// client gets PUBACK/PUBREC "not authorized".
	AuthorizePublish func(ctx context.Context, c ClientInfo, topic string, qos byte, retain bool) error
	// AuthorizeSubscribe is called for each topic filter of a SUBSCRIBE and may
	// lower the granted QoS. A non-nil error refuses that filter (SUBACK 0x87 in
	// 5.0, 0x80 in 3.1.1). A shared subscription's filter is passed whole
	// ("$share/group/filter").
	AuthorizeSubscribe func(ctx context.Context, c ClientInfo, filter string, qos byte) (grantedQoS byte, err error)
}

// ClientInfo identifies a connected client to the hooks.
type ClientInfo struct {
	// ID is the client identifier (assigned by the broker for an empty 5.0 one).
	ID string
	// Username is the CONNECT user name ("" when none was given).
	Username string
	// RemoteAddr is the network address of the client.
	RemoteAddr string
	// ProtocolVersion is 3 (3.1), 4 (3.1.1) or 5 (5.0).
	ProtocolVersion byte
}

func (b *Broker) authenticate(ctx context.Context, c ClientInfo, user string, pass []byte) error {
	if b.opts.Hooks.Authenticate == nil {
		return nil
	}
	return b.opts.Hooks.Authenticate(ctx, c, user, pass)
}

func (b *Broker) authorizePublish(ctx context.Context, c ClientInfo, topic string, qos byte, retain bool) error {
	if b.opts.Hooks.AuthorizePublish == nil {
		return nil
	}
	return b.opts.Hooks.AuthorizePublish(ctx, c, topic, qos, retain)
}

func (b *Broker) authorizeSubscribe(ctx context.Context, c ClientInfo, filter string, qos byte) (byte, error) {
	if b.opts.Hooks.AuthorizeSubscribe == nil {
		return qos, nil
	}
	g, err := b.opts.Hooks.AuthorizeSubscribe(ctx, c, filter, qos)
	if err != nil {
		return 0, err
	}
	return min(g, qos), nil
}
