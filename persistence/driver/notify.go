package driver

import (
	"context"
	"strings"
	"unicode/utf8"
)

// MaxNotificationPayload is the longest notification payload, in bytes, that every
// [Notifier] must carry. (PostgreSQL's own limit is 8000 bytes.)
const MaxNotificationPayload = 4000

// maxChannel is the longest channel name.
const maxChannel = 32

// Notifier is implemented by a shared [Conn] ([Sharer]) that carries short
// notifications between the providers of one store, so that brokers on one store
// can wake each other without a second server (PostgreSQL: NOTIFY and LISTEN).
//
// An [OpNotify] in an Apply is sent when, and only if, the Apply commits: a
// listener never hears of a write it cannot read yet, and a failed (or fenced)
// Apply notifies nobody. Notifications are a wake-up, not a log: a listener that
// loses its connection to the store misses those sent meanwhile, which is why
// Listen returns then and the caller must catch up from the store's data.
type Notifier interface {
	// Listen calls fn with the payload of every notification sent on channel by
	// any provider of the store (this one included) once listening is in place,
	// which it reports by calling ready once. fn is called from one goroutine, in
	// the order the notifications' transactions committed. Listen returns
	// ctx.Err() when ctx ends, or the error that broke its connection to the
	// store; notifications sent while no Listen was in place are lost.
	Listen(ctx context.Context, channel string, ready func(), fn func(payload string)) error
}

// ValidateNotification checks a notification's channel and payload: a channel of 1
// to 32 characters among a–z, 0–9 and '_', and a payload of valid UTF-8 without
// NUL bytes, at most [MaxNotificationPayload] bytes long. The SDK calls it before a
// driver sees them.
func ValidateNotification(channel, payload string) error {
	if channel == "" || len(channel) > maxChannel || strings.IndexFunc(channel, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) >= 0 {
		return invalidArg("notification channel %q: want 1 to %d characters among a-z, 0-9 and _", channel, maxChannel)
	}
	if len(payload) > MaxNotificationPayload {
		return invalidArg("notification payload of %d bytes exceeds %d", len(payload), MaxNotificationPayload)
	}
	if !utf8.ValidString(payload) || strings.IndexByte(payload, 0) >= 0 {
		return invalidArg("notification payload is not UTF-8 text without NUL bytes")
	}
	return nil
}
