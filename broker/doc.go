// Package broker is a small MQTT 3.1.1 and 5.0 broker whose only memory that
// outlives the process is a *persistence.Store: every change to persistent state
// (a session created, a subscription acknowledged, a message queued for an offline
// or slow persistent subscriber, a packet put in flight, an acknowledgement, a
// retained message, a will and its deadline, a session expiry deadline) is written
// through the store when it happens, and New restores all of it.
//
// It exists to show what the SDK is for and to prove its API; it is not a
// production broker (no clustering; see "Not implemented" below).
//
// Beyond sessions, queues, retained messages, wills and expiry it has: shared
// subscriptions ("$share/group/filter", also from 3.1.1 clients; see shared.go
// for what happens to a leaving member's messages), topic aliases in both
// directions (the broker hands out aliases first come, first served up to the
// client's Topic Alias Maximum, then sends full topics), the limits and
// features of Limits announced in CONNACK and enforced, subscriptions that take
// effect when the SUBSCRIBE arrives (a message published meanwhile is routed to
// them; a failed commit withdraws them and the SUBACK says 0x80), $SYS/broker
// statistics (Options.SysInterval), MQTT over WebSocket (ServeWebsocket,
// WebsocketHandler) and hooks for authentication and authorization, which
// package broker/auth implements with password and ACL files.
//
// Durability contract: a publisher's PUBACK (QoS 1) or PUBREC (QoS 2) is sent only
// after the message is committed, in one multi-session persistence.Batch, for every
// persistent subscriber that matched. A persistent session is one that outlives its
// connection: MQTT 3.1.1 clean session = 0, or MQTT 5.0 session expiry interval > 0.
// Sessions that end with their connection never touch the store for messages.
//
// Policies worth knowing (each is documented where it is implemented):
//   - QoS 0 messages are never queued for offline sessions (MQTT allows dropping
//     them); they are sent to online subscribers or dropped.
//   - A full per-session queue (Limits.MaxQueuedMessages / MaxQueuedBytes) refuses
//     the new message for that session only: it is counted in Stats.Dropped and
//     logged, other subscribers still get it and the publisher is acknowledged.
//   - Shutdown closes connections as the server's decision (5.0 DISCONNECT 0x8B):
//     no will is published during shutdown; a persistent session's will is kept with
//     its deadline (now + will delay) so the next New publishes it once the deadline
//     passed, unless the client reconnects first.
//   - A subscriber's acknowledgement (PUBACK, PUBCOMP) frees its window slot at
//     once; deleting the message from the store rides with the session's next write
//     or the delivery loop's next flush, not one commit per acknowledgement. A crash
//     in between redelivers the message with DUP, which QoS 1 and 2 allow; a clean
//     shutdown flushes them.
//   - A persistent session that was connected when the process died is treated, on
//     the next New, as disconnected at that moment: its will and expiry clocks
//     start then.
//
// Limits: every byte the broker holds in memory for clients is bounded by a
// field of Limits, each with a default (see Limits for the details):
//   - per session: MaxQueuedMessages (10000) and MaxQueuedBytes (64 MiB) bound
//     its queue; a persistent session's queue is in the store and only counted.
//   - per connection: ReceiveMaximum (32) messages in flight, MaxPacketSize
//     (1 MiB) per packet read (allocated as its bytes arrive), and
//     MaxConnQueueBytes (4 MiB) waiting for the connection's writer.
//   - broker-wide: MaxBufferedBytes (64 MiB) waiting for all writers together
//     and queued in memory for sessions that are not stored (beyond it such a
//     queue drops new messages).
//   - back-pressure: a QoS 0 message for a subscriber whose queue (or the
//     broker's) is full pauses its publisher — the broker stops reading from it
//     — for up to BackpressureWait (1 s), then is dropped for that subscriber
//     (Stats.Dropped); a subscriber that stayed full that long is marked stalled
//     and QoS 0 messages for it are dropped without pausing anyone until its
//     queue is half empty. QoS 1/2 messages beyond the window wait in the
//     session's queue; a writer blocked for 30 s disconnects its client.
//   - connections: MaxConnections (4096) at once, beyond which a connection is
//     closed as soon as it is accepted, and MaxConnectionRate (1000 per second,
//     burst as many), beyond which a connection waits for its turn and is
//     closed when that is more than 2 s away; refused connections are counted
//     in Stats.Refused and logged at most every 10 s.
//   - idle clients: a client with keep-alive 0 must send a whole packet every
//     IdleTimeout (5 min), and one with a keep-alive every 1.5 times it, or it
//     is disconnected (5.0: 0x8D): trickling bytes does not keep a connection.
//
// With these defaults, two subscribers to "#" that never read and 1,100 QoS 0
// messages of 500 KB leave the demo program at a peak of 40 MB resident
// (TestMemoryBarNonReadingSubscribers in package demo).
//
// Damaged stores: New fails when a session's records cannot be decoded
// (persistence.ErrBrokenEntry), unless Options.Quarantine is set: the session is
// then set aside — left in the store untouched, logged, counted in
// RestoreStats.Quarantined and listed by Broker.Quarantined, its client refused
// with CONNACK 0x88 (3.1.1: 3) — and every other session is restored.
//
// Delivery: a message is decoded once when it arrives, and encoded once per
// variant (QoS, RETAIN, subscription identifiers) and protocol version; every
// subscriber's connection writes that shared encoding with its own packet id and
// DUP flag, and a connection's writer coalesces everything queued into one
// write(2), flushing when its queue is empty.
//
// Not implemented, and what a client gets instead:
//   - Enhanced authentication: a CONNECT with an Authentication Method gets
//     CONNACK 0x8C (bad authentication method); an AUTH packet is a protocol
//     error (DISCONNECT 0x82).
//   - Server redirection, message rate limits, quotas and a maximum connect
//     time: reason codes 0x9C, 0x9D, 0x96, 0x97 and 0xA0 are never sent.
//   - Request Response Information is ignored (no Response Information is
//     sent, which the specification allows); Request Problem Information 0 is
//     honoured trivially, since the broker sends no Reason String or User
//     Property of its own.
//   - Payload Format Indicator: payloads marked UTF-8 are forwarded unchecked
//     (the check is optional; 0x99 is never sent).
//   - Receive Maximum from the client side is enforced for QoS 2 (DISCONNECT
//     0x93 beyond it); QoS 1 PUBLISH packets are acknowledged one by one as they
//     are read, so a client cannot have more unacknowledged than it has sent.
//   - Authorization of what a client reads is decided at SUBSCRIBE (SUBACK
//     0x87, 3.1.1 0x80), not again for each message delivered.
//   - A QoS 0 message is never queued for an offline session, and a 3.1.1
//     client that breaks a limit it cannot be told about (Maximum QoS, Retain
//     Available) is disconnected without a reason code.
//
// The package imports only the standard library, persistence, broker/packet and
// github.com/coder/websocket; it must not import any driver (tests do, from
// package broker_test), the conformance suite or cmd/.
package broker
