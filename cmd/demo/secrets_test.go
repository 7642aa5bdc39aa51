package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/demo"
)

// secretCases are store URLs that fail, each carrying a password through one failure
// path: parse errors, bad options, unreachable servers, bad TLS files, every driver.
// Each password is unique so that a leak names its case.
func secretCases(t *testing.T) map[string]string {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	return map[string]string{
		"pg-bad-port":          "postgres://u:Pw1-badport@127.0.0.1:99999/db",
		"pg-missing-bracket":   "postgres://u:Pw2-bracket@[::1/db",
		"pg-refused":           "postgres://u:Pw3-refused@127.0.0.1:1/db?connect_timeout=2",
		"pg-password-option":   "postgres://u@127.0.0.1:1/db?password=Pw4-option&connect_timeout=2",
		"pg-sslpassword":       "postgres://u:pw@127.0.0.1:1/db?sslmode=require&sslcert=" + missing + "&sslkey=" + missing + "&sslpassword=Pw5-sslpassword",
		"pg-unknown-option":    "postgres://u:Pw6-unknownopt@127.0.0.1:1/db?bogus=1",
		"pg-bad-option-value":  "postgres://u:Pw7-badvalue@127.0.0.1:1/db?pool_max_conns=many",
		"pg-keyword-value":     "host=127.0.0.1 port=1 user=u password=Pw8-keyword dbname=db",
		"pg-escaped-password":  "postgres://u:Pw9%40esc%2Faped@127.0.0.1:1/db?connect_timeout=2",
		"pg-space-in-url":      "postgres://u:Pw10-space @127.0.0.1:1/db",
		"pg-unknown-host":      "postgres://u:Pw11-host@no-such-host.invalid:5432/db?connect_timeout=2",
		"postgresql-scheme":    "postgresql://u:Pw12-scheme@127.0.0.1:1/db?connect_timeout=2",
		"bolt-userinfo":        "bolt://u:Pw13-bolt@" + filepath.Join(dir, "x.db"),
		"bolt-bad-option":      "bolt:///" + filepath.Join(dir, "x.db") + "?sync=sometimes&password=Pw14-boltopt",
		"badger-userinfo":      "badger://u:Pw15-badger@/" + filepath.Join(dir, "b"),
		"mem-option":           "mem://?password=Pw16-mem",
		"unknown-scheme":       "nosuch://u:Pw17-unknown@host/db",
		"no-scheme":            "u:Pw18-noscheme@host/db",
		"control-character":    "postgres://u:Pw19-ctl@127.0.0.1:1/db\x7f",
		"bad-percent-encoding": "postgres://u:Pw20-pct%zz@127.0.0.1:1/db",
	}
}

// forms are the ways a password may appear in output: as given, decoded, encoded.
func forms(dsn string) []string {
	var pw []string
	for _, s := range []string{dsn} {
		for _, part := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(":@/?&= ", r) }) {
			if strings.HasPrefix(part, "Pw") {
				pw = append(pw, part)
			}
		}
	}
	var out []string
	for _, p := range pw {
		out = append(out, p)
		if d, err := url.PathUnescape(p); err == nil && d != p {
			out = append(out, d)
		}
		if e := url.QueryEscape(p); e != p {
			out = append(out, e)
		}
		// Its number alone ("Pw8-"), in case only a piece is printed.
		if i := strings.Index(p, "-"); i > 0 {
			out = append(out, p[:i+1])
		}
	}
	return out
}

func checkLeaks(t *testing.T, what, dsn string, out []byte) {
	t.Helper()
	for _, f := range forms(dsn) {
		if bytes.Contains(out, []byte(f)) {
			t.Errorf("%s: the password (%q) appears in the output:\n%s", what, f, out)
			return
		}
	}
}

// TestSecretsNeverPrinted runs every command that takes a store URL with each
// failing URL and greps everything it printed for the password: the demo (normal
// start and -selfcheck), and cmd/mqttstore if it exists. cmd/mqttload takes no store
// URL (checked here, so that adding one means extending this test).
func TestSecretsNeverPrinted(t *testing.T) {
	cases := secretCases(t)
	for name, dsn := range cases {
		if len(forms(dsn)) == 0 {
			t.Fatalf("case %s has no password to look for", name)
		}
		for _, mode := range [][]string{nil, {"-selfcheck"}} {
			t.Run(name+strings.Join(mode, ""), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				var out bytes.Buffer
				cmd := &demo.Command{Name: "demo", Stdout: &out, Stderr: &out}
				args := append([]string{"-store", dsn, "-listen", "127.0.0.1:0"}, mode...)
				code := cmd.Run(ctx, args)
				if ctx.Err() != nil {
					t.Fatalf("the demo did not fail within 30 s on %s", persistenceRedacted(dsn))
				}
				if code == 0 {
					t.Fatalf("the demo succeeded on a failing store URL; output:\n%s", out.Bytes())
				}
				checkLeaks(t, "demo "+strings.Join(args[2:], " "), dsn, out.Bytes())
			})
		}
	}
	t.Run("mqttload takes no store URL", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, _ := exec.CommandContext(ctx, goTool(), "run", "../mqttload", "-h").CombinedOutput()
		if !strings.Contains(string(out), "-addr") {
			t.Fatalf("mqttload -h printed no flags:\n%s", out)
		}
		for _, s := range []string{"-store", "dsn", "store URL"} {
			if strings.Contains(string(out), s) {
				t.Errorf("mqttload now mentions %q: feed its store URL paths to this test too:\n%s", s, out)
			}
		}
	})
	if _, err := os.Stat("../mqttstore"); err == nil {
		t.Run("mqttstore", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			tmp := t.TempDir()
			bin := filepath.Join(tmp, "mqttstore")
			if out, err := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "../mqttstore").CombinedOutput(); err != nil {
				t.Fatalf("build cmd/mqttstore: %v\n%s", err, out)
			}
			archive := filepath.Join(tmp, "empty.mqs")
			if out, err := exec.CommandContext(ctx, bin, "export", "mem://", archive).CombinedOutput(); err != nil {
				t.Fatalf("export mem:// to an archive: %v\n%s", err, out)
			}
			for name, dsn := range cases {
				for _, args := range [][]string{
					{"inspect", dsn},
					{"check", dsn},
					{"export", dsn, filepath.Join(tmp, name+".mqs")},
					{"import", archive, dsn},
					{"migrate", dsn, "mem://"},
					{"migrate", "mem://", dsn},
					{"compact", dsn},
				} {
					cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
					out, err := exec.CommandContext(cctx, bin, args...).CombinedOutput()
					ccancel()
					what := "mqttstore " + args[0] + " (" + name + ")"
					if err == nil {
						t.Errorf("%s succeeded on a failing store URL:\n%s", what, out)
					}
					checkLeaks(t, what, dsn, out)
				}
			}
		})
	}
}

// persistenceRedacted keeps the test's own messages free of the passwords.
func persistenceRedacted(dsn string) string {
	if i := strings.Index(dsn, "://"); i > 0 {
		return dsn[:i] + "://…"
	}
	return "(a keyword/value DSN)"
}

// goTool is the go command running the tests, or the one on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
