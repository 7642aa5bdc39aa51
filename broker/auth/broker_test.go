package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/auth"
	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/mem"
)

const wait = 10 * time.Second

const aclText = `
topic read public/#
user alice
topic readwrite alice/#
topic write cmd/+
user bob
topic read cmd/#
pattern readwrite devices/%c/#
`

// serve starts a broker on a fresh in-memory store with the authorizer's hooks.
func serve(t *testing.T, a *auth.Authorizer) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := persistence.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Options{Store: st, Hooks: a.Hooks(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	t.Cleanup(func() {
		b.Close()
		<-served
		st.Close()
	})
	return l.Addr().String()
}

func files(t *testing.T) (passwd, acl string) {
	t.Helper()
	dir := t.TempDir()
	passwd, acl = dir+"/passwd", dir+"/acl"
	for user, pw := range map[string]string{"alice": "secret", "bob": "pw"} {
		if err := auth.AddUser(passwd, user, pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(acl, []byte(aclText), 0o600); err != nil {
		t.Fatal(err)
	}
	return passwd, acl
}

type v5 struct {
	c    *paho.Client
	msgs chan *paho.Publish
}

func dial5(t *testing.T, addr string, cp *paho.Connect) (*v5, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	v := &v5{msgs: make(chan *paho.Publish, 100)}
	v.c = paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { v.msgs <- pr.Packet; return true, nil }}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cp.KeepAlive = 30
	ack, err := v.c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { v.c.Disconnect(&paho.Disconnect{}) })
	return v, ack, nil
}

func dial3(t *testing.T, addr, id, user, pw string) (mqtt.Client, chan mqtt.Message, byte) {
	t.Helper()
	msgs := make(chan mqtt.Message, 100)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(user).SetPassword(pw).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { msgs <- m })
	c := mqtt.NewClient(o)
	tok := c.Connect()
	tok.WaitTimeout(wait)
	t.Cleanup(func() { c.Disconnect(0) })
	return c, msgs, tok.(*mqtt.ConnectToken).ReturnCode()
}

func TestAccessControl(t *testing.T) {
	passwd, acl := files(t)
	a, err := auth.New(auth.Config{PasswordFile: passwd, ACLFile: acl, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, a)

	// CONNECT: wrong password, both versions.
	if _, ack, err := dial5(t, addr, &paho.Connect{ClientID: "x", Username: "alice", UsernameFlag: true,
		Password: []byte("wrong"), PasswordFlag: true}); err == nil || ack == nil || ack.ReasonCode != byte(packet.BadUsernameOrPassword) {
		t.Fatalf("wrong password (5.0): %v %+v", err, ack)
	}
	if _, _, rc := dial3(t, addr, "x3", "alice", "wrong"); rc != packet.ConnRefusedBadCredentials311 {
		t.Fatalf("wrong password (3.1.1): return code %d", rc)
	}
	// A will the ACL does not allow refuses the CONNECT.
	if _, ack, err := dial5(t, addr, &paho.Connect{ClientID: "w", Username: "alice", UsernameFlag: true,
		Password: []byte("secret"), PasswordFlag: true, WillMessage: &paho.WillMessage{Topic: "public/x", Payload: []byte("x")}}); err == nil || ack.ReasonCode != byte(packet.NotAuthorized) {
		t.Fatalf("denied will: %v %+v", err, ack)
	}

	alice, _, err := dial5(t, addr, &paho.Connect{ClientID: "alice5", Username: "alice", UsernameFlag: true,
		Password: []byte("secret"), PasswordFlag: true})
	if err != nil {
		t.Fatal(err)
	}
	// SUBSCRIBE: per filter.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sa, err := alice.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "alice/#", QoS: 1}, {Topic: "cmd/#", QoS: 1}, {Topic: "public/x", QoS: 1},
		{Topic: "devices/alice5/#", QoS: 1}, {Topic: "$share/g/alice/x", QoS: 1}}})
	if sa == nil {
		t.Fatal(err)
	}
	want := []byte{1, byte(packet.NotAuthorized), byte(packet.NotAuthorized), 1, 1}
	if string(sa.Reasons) != string(want) {
		t.Fatalf("SUBACK %v, want %v", sa.Reasons, want)
	}
	bob, bobMsgs, rc := dial3(t, addr, "bob3", "bob", "pw")
	if rc != 0 {
		t.Fatalf("bob: return code %d", rc)
	}
	tok := bob.Subscribe("cmd/#", 1, nil)
	if !tok.WaitTimeout(wait) || tok.(*mqtt.SubscribeToken).Result()["cmd/#"] != 1 {
		t.Fatalf("bob cmd/#: %v", tok.(*mqtt.SubscribeToken).Result())
	}
	tok = bob.Subscribe("alice/#", 1, nil)
	if !tok.WaitTimeout(wait) || tok.(*mqtt.SubscribeToken).Result()["alice/#"] != 0x80 {
		t.Fatalf("bob alice/#: %v", tok.(*mqtt.SubscribeToken).Result())
	}

	// PUBLISH: 5.0 gets 0x87, 3.1.1 is acknowledged and dropped.
	if r, _ := alice.c.Publish(ctx, &paho.Publish{Topic: "public/x", QoS: 1, Payload: []byte("x")}); r == nil || r.ReasonCode != byte(packet.NotAuthorized) {
		t.Fatalf("denied 5.0 publish: %+v", r)
	}
	anon, _, rc := dial3(t, addr, "anon3", "", "")
	if rc != 0 {
		t.Fatalf("anonymous: return code %d", rc)
	}
	if tok := anon.Publish("cmd/x", 1, false, "dropped"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("denied 3.1.1 publish: %v", tok.Error())
	}
	if r, _ := alice.c.Publish(ctx, &paho.Publish{Topic: "cmd/y", QoS: 1, Payload: []byte("allowed")}); r == nil || r.ReasonCode != 0 {
		t.Fatalf("allowed publish: %+v", r)
	}
	select {
	case m := <-bobMsgs:
		if string(m.Payload()) != "allowed" {
			t.Fatalf("bob got %q", m.Payload())
		}
	case <-time.After(wait):
		t.Fatal("bob got nothing")
	}

	// Reload on SIGHUP: alice may now write public/#.
	if err := os.WriteFile(acl, []byte(aclText+"user alice\ntopic write public/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	a.ReloadOnSIGHUP(sctx, slog.New(slog.DiscardHandler))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for a.AuthorizePublish(ctx, broker.ClientInfo{ID: "alice5", Username: "alice"}, "public/x", 1, false) != nil {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the ACL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, _ := alice.c.Publish(ctx, &paho.Publish{Topic: "public/x", QoS: 1, Payload: []byte("x")}); r == nil || r.ReasonCode != 0 {
		t.Fatalf("publish after reload: %+v", r)
	}
	// A broken file keeps the previous rules.
	os.WriteFile(acl, []byte("nonsense\n"), 0o600)
	if err := a.Reload(); err == nil {
		t.Fatal("broken ACL reloaded")
	}
	if a.AuthorizePublish(ctx, broker.ClientInfo{ID: "alice5", Username: "alice"}, "public/x", 1, false) != nil {
		t.Fatal("previous rules lost")
	}
}

func TestAnonymousRefused(t *testing.T) {
	passwd, acl := files(t)
	a, err := auth.New(auth.Config{PasswordFile: passwd, ACLFile: acl})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, a)
	if _, ack, err := dial5(t, addr, &paho.Connect{ClientID: "anon"}); err == nil || ack == nil || ack.ReasonCode != byte(packet.NotAuthorized) {
		t.Fatalf("anonymous 5.0: %v %+v", err, ack)
	}
	if _, _, rc := dial3(t, addr, "anon3", "", ""); rc != packet.ConnRefusedNotAuthorized311 {
		t.Fatalf("anonymous 3.1.1: return code %d", rc)
	}
	if _, _, rc := dial3(t, addr, "bob3", "bob", "pw"); rc != 0 {
		t.Fatalf("bob: return code %d", rc)
	}
	if _, err := auth.New(auth.Config{PasswordFile: passwd + ".missing"}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing password file: %v", err)
	}
}
