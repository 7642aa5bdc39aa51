package demo

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/broker/auth"
)

func TestPasswdCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	var out, errOut bytes.Buffer
	cmd := &Command{Name: "demo", Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("s3cret\n")}
	if rc := cmd.Run(t.Context(), []string{"passwd", path, "alice"}); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errOut.String())
	}
	p, err := auth.LoadPasswords(path)
	if err != nil || !p.Check("alice", []byte("s3cret")) {
		t.Fatalf("password not set: %v", err)
	}
	if rc := cmd.Run(t.Context(), []string{"passwd", path}); rc != 2 {
		t.Fatalf("missing user: exit %d", rc)
	}
}

// TestRunWithAccessControl: with -password-file and no -allow-anonymous,
// anonymous clients are refused and users connect with their password.
func TestRunWithAccessControl(t *testing.T) {
	dir := t.TempDir()
	passwd, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	if err := auth.AddUser(passwd, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acl, []byte("user alice\ntopic readwrite alice/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "mem://")
	cfg.Access = accessConfig{PasswordFile: passwd, ACLFile: acl, WSListen: "127.0.0.1:0", SysInterval: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "demo", cfg, func(a Addrs) { ready <- a.MQTT }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not return")
		}
	})
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("broker did not start")
	}
	connect := func(user, pw string) byte {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + addr.String()).SetClientID("c-" + user).
			SetUsername(user).SetPassword(pw).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
		c := mqtt.NewClient(o)
		tok := c.Connect()
		tok.WaitTimeout(10 * time.Second)
		t.Cleanup(func() { c.Disconnect(0) })
		return tok.(*mqtt.ConnectToken).ReturnCode()
	}
	if rc := connect("", ""); rc != 5 {
		t.Fatalf("anonymous: return code %d, want 5", rc)
	}
	if rc := connect("alice", "bad"); rc != 4 {
		t.Fatalf("wrong password: return code %d, want 4", rc)
	}
	if rc := connect("alice", "pw"); rc != 0 {
		t.Fatalf("alice: return code %d", rc)
	}
}
