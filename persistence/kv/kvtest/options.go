package kvtest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// BadURLs checks that opening each URL (a key of cases) fails with
// persistence.ErrInvalidConfig and an error containing the value: the option or
// part of the URL that is wrong.
func BadURLs(t *testing.T, cases map[string]string) {
	for dsn, mention := range cases {
		p, err := persistence.Open(context.Background(), dsn)
		if err == nil {
			_ = p.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if !errors.Is(err, persistence.ErrInvalidConfig) || !strings.Contains(err.Error(), mention) {
			t.Errorf("Open(%q) = %v; want ErrInvalidConfig naming %q", dsn, err, mention)
		}
	}
}
