package mochi

// This file is the only place that names the SDK's store types, so that the coming
// API change (*persistence.Store becoming *persistence.Store, Sessions and Retained
// becoming concrete pointer types) is an edit of these lines.

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence"
)

// Store is an open mqttstore store.
type Store = *persistence.Store

type (
	sessionsAPI = *persistence.Sessions
	retainedAPI = *persistence.Retained
)

func openStore(ctx context.Context, url string) (Store, error) { return persistence.Open(ctx, url) }
