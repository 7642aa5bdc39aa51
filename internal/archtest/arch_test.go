// Package archtest checks the module's dependency rules (see ARCHITECTURE.md): they
// are enforced here, by a test, rather than written in package documentation.
package archtest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const mod = "github.com/mqttstore/mqttstore"

// rule forbids packages matching from (a prefix of the path below the module) to
// import packages matching any of the prefixes in not.
type rule struct {
	from string
	not  []string
	why  string
}

var rules = []rule{
	{"persistence/driver", []string{"persistence", "providers", "conformance", "broker", "cmd", "internal"}, "the driver package is the leaf every driver and the SDK build on"},
	{"persistence", []string{"providers", "conformance", "broker", "cmd", "go.opentelemetry.io"}, "the SDK knows no driver, no suite, no broker and no metrics library"},
	{"persistence/kv/kvtest", []string{"providers", "broker", "cmd"}, "the kv test kit runs the suite on any kv engine"},
	{"conformance", []string{"providers", "broker", "cmd"}, "the suite tests drivers through the SDK only"},
	{"providers/", []string{"providers/", "conformance", "broker", "cmd"}, "no driver imports another driver, the suite or the broker"},
	{"broker", []string{"providers", "conformance", "cmd"}, "the broker runs on any driver"},
	{"broker/packet", []string{"persistence", "providers", "conformance", "broker/", "cmd", "internal", "demo"}, "the codec stands alone (fuzzed and reused on its own)"},
	{"internal", []string{"cmd"}, "commands are leaves"},
	{"demo", []string{"providers", "conformance", "cmd"}, "the demo runs on whatever driver its main imports"},
}

// imports lists, for each non-test package of the module, the packages it imports
// (outside the standard library).
func imports(t *testing.T) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m[f[0]] = f[1:]
	}
	return m
}

func rel(path string) (string, bool) {
	if path == mod {
		return "", true
	}
	return strings.CutPrefix(path, mod+"/")
}

func matches(path, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestDependencyRules(t *testing.T) {
	pkgs := imports(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	checked := 0
	for pkg, deps := range pkgs {
		from, ok := rel(pkg)
		if !ok {
			continue
		}
		for _, r := range rules {
			if !matches(from, r.from) {
				continue
			}
			// A more specific rule owns its packages (persistence/driver is not
			// governed by the rule for persistence).
			if r.from == "persistence" && (matches(from, "persistence/driver") || matches(from, "persistence/otelstore") || matches(from, "persistence/kv/kvtest")) {
				continue
			}
			checked++
			for _, d := range deps {
				target := d
				if rd, ok := rel(d); ok {
					target = rd
				}
				for _, bad := range r.not {
					if matches(target, bad) && !(r.from == "providers/" && samedriver(from, target)) {
						t.Errorf("%s imports %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package was checked against a rule")
	}
}

// samedriver reports whether a and b are packages of the same driver
// (providers/postgres and providers/postgres/internal/…).
func samedriver(a, b string) bool {
	pa := strings.SplitN(a, "/", 3)
	pb := strings.SplitN(b, "/", 3)
	return len(pa) >= 2 && len(pb) >= 2 && pa[1] == pb[1]
}
