package tool

// This file is the only place that names the SDK's store types, so that the coming
// API change (*persistence.Store becoming *persistence.Store, Sessions and
// Retained becoming concrete pointer types, System().GetInfo becoming Info) is an
// edit of these few lines.

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence"
)

// Store is an open store.
type Store = *persistence.Store

// sessionsAPI and retainedAPI are the stores' session and retained-message APIs.
type (
	sessionsAPI = *persistence.Sessions
	retainedAPI = *persistence.Retained
)

// Open opens the store at url.
func Open(ctx context.Context, url string) (Store, error) { return persistence.Open(ctx, url) }

// storeInfo returns the store's metadata.
func storeInfo(ctx context.Context, s Store) (persistence.SystemInfo, error) {
	return s.Info(ctx)
}
