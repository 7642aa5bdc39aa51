package mem_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// TestOpen checks mem's URL rules and what its stores report about themselves.
func TestOpen(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, dsn := range []string{"mem://", "MEM://"} {
		s, err := persistence.Open(ctx, dsn, persistence.WithClock(fixedClock{t0}))
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		info, err := s.Info(ctx)
		want := persistence.SystemInfo{SchemaVersion: persistence.SchemaVersion, CreatedAt: t0, SDKVersion: persistence.SDKVersion, Driver: mem.Name}
		if err != nil || info != want {
			t.Fatalf("Info = %+v, %v; want %+v", info, err, want)
		}
		_ = s.Close()
	}
	for _, tc := range []struct{ dsn, mention string }{
		{"mem://?bogus=1", `"bogus"`},
		{"mem://foo", `host "foo"`},
		{"mem:///var/lib/x", `path "/var/lib/x"`},
		{"mem://user@", `user info`},
		{"mem:foo", `opaque`},
		{"mem://#frag", `fragment`},
	} {
		_, err := persistence.NewConnector(tc.dsn)
		if !errors.Is(err, persistence.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("NewConnector(%q) = %v, want ErrInvalidConfig mentioning %s", tc.dsn, err, tc.mention)
		}
	}
}
