package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/broker"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// serveWebsocket runs the env's broker on a second, WebSocket listener.
func serveWebsocket(t *testing.T, e *env) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	b := e.b
	go func() { done <- b.ServeWebsocket(l) }()
	t.Cleanup(func() {
		b.Close()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, broker.ErrServerClosed) {
				t.Errorf("ServeWebsocket: %v", err)
			}
		case <-time.After(wait):
			t.Error("ServeWebsocket did not return after Shutdown")
		}
	})
	return l.Addr().String()
}

// lockedConn makes paho.golang write each packet under one lock: it writes a
// packet in several Write calls (header, then each part) and relies on the
// connection being a sync.Locker to keep concurrent packets apart. Over TCP the
// parts of two packets cannot interleave within one writev; over a WebSocket
// NetConn each Write is a message of its own, and without the lock a PINGREQ or
// acknowledgement can land inside another packet.
type lockedConn struct {
	net.Conn
	sync.Mutex
}

// dialWebsocketV5 connects paho.golang over a WebSocket made with coder/websocket.
func dialWebsocketV5(t *testing.T, url string, hc *http.Client, cp *paho.Connect) *v5client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"mqtt"}, HTTPClient: hc})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	nc := &lockedConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary)}
	v := &v5client{msgs: make(chan *paho.Publish, 100)}
	v.c = paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { v.msgs <- pr.Packet; return true, nil }}})
	cp.KeepAlive = 30
	ack, err := v.c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		t.Fatalf("MQTT over websocket: %v", err)
	}
	v.ack = ack
	t.Cleanup(func() { v.c.Disconnect(&paho.Disconnect{}) })
	return v
}

func TestWebsocket(t *testing.T) {
	e := newEnv(t, storeKinds()[1], broker.Options{})
	addr := serveWebsocket(t, e)
	s5 := dialWebsocketV5(t, "ws://"+addr+"/mqtt", nil, &paho.Connect{ClientID: "ws5", CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
	s5.sub(t, paho.SubscribeOptions{Topic: "ws/#", QoS: 1})
	// paho.mqtt.golang has its own WebSocket client (gorilla/websocket).
	s3 := dialV3(t, "", "ws3", true, func(o *mqtt.ClientOptions) {
		o.Servers = nil
		o.AddBroker("ws://" + addr + "/mqtt")
	})
	s3.sub(t, "ws/#", 2)
	tcp := dialV3(t, e.addr, "tcp", true)
	tcp.pub(t, "ws/a", 1, false, "from tcp")
	s3.pub(t, "ws/b", 2, false, "from ws3")
	for _, want := range []string{"from tcp", "from ws3"} {
		if m := s5.recv(t); string(m.Payload) != want {
			t.Fatalf("5.0 over websocket: %q, want %q", m.Payload, want)
		}
		if m := s3.recv(t); string(m.Payload()) != want {
			t.Fatalf("3.1.1 over websocket: %q, want %q", m.Payload(), want)
		}
	}

	t.Run("subprotocol required", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		_, _, err = ws.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("without the mqtt subprotocol: %v", err)
		}
	})
}

func TestWebsocketTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	e := newEnv(t, storeKinds()[0], broker.Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	addr := serveWebsocket(t, e)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := dialWebsocketV5(t, "wss://"+addr+"/mqtt", hc, &paho.Connect{ClientID: "wss", CleanStart: true})
	c.sub(t, paho.SubscribeOptions{Topic: "t", QoS: 1})
	c.pub(t, &paho.Publish{Topic: "t", QoS: 1, Payload: []byte("over wss")})
	if m := c.recv(t); string(m.Payload) != "over wss" {
		t.Fatalf("got %q", m.Payload)
	}
}
