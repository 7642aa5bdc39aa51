// Package broker is a small MQTT 3.1.1 and 5.0 broker whose only memory that
// outlives the process is a *persistence.Store: every change to persistent state
// (a session created, a subscription acknowledged, a message queued for an offline
// or slow persistent subscriber, a packet put in flight, an acknowledgement, a
// retained message, a will and its deadline, a session expiry deadline) is written
// through the store when it happens, and New restores all of it.
//
// It exists to show what the SDK is for and to prove its API; it is not a
// production broker (no clustering, no shared subscriptions, no topic aliases, no
// enhanced authentication).
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
// The package imports only the standard library, persistence and broker/packet; it
// must not import any driver (tests do, from package broker_test), the conformance
// suite or cmd/.
package broker
