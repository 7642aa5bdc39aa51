package broker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/coder/websocket"
)

// websocketProtocols are the WebSocket subprotocols MQTT clients ask for:
// "mqtt" (MQTT 3.1.1 and 5.0) and "mqttv3.1" (old MQTT 3.1 clients).
var websocketProtocols = []string{"mqtt", "mqttv3.1"}

// WebsocketHandler returns an http.Handler that serves MQTT over WebSocket
// (subprotocol "mqtt") at whatever path it is mounted, for embedding in an
// existing HTTP server; ServeWebsocket runs one on its own. A request that does
// not ask for the mqtt subprotocol is refused with close status 1008.
//
// The WebSocket origin check is off: MQTT clients in browsers are usually
// served from another origin, and MQTT authenticates in its CONNECT, not with
// the browser's cookies, so a cross-origin page gains nothing a direct client
// would not have.
func (b *Broker) WebsocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       websocketProtocols,
			InsecureSkipVerify: true,
		})
		if err != nil {
			b.log.Debug("broker: websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
			return // Accept has answered the request
		}
		if !slices.Contains(websocketProtocols, ws.Subprotocol()) {
			ws.Close(websocket.StatusPolicyViolation, "the mqtt subprotocol is required")
			return
		}
		if !b.track(nil) {
			ws.Close(websocket.StatusGoingAway, "server shutting down")
			return
		}
		defer b.wg.Done()
		// Every MQTT byte goes in binary messages; packets may span messages
		// and messages may hold several packets, as MQTT over WebSocket allows.
		b.serveConn(websocket.NetConn(b.ctx, ws, websocket.MessageBinary))
	})
}

// ServeWebsocket accepts MQTT over WebSocket connections on l (HTTPS when
// Options.TLSConfig is set, as Serve does for TCP) until Shutdown or Close,
// and then returns nil. It returns an error when l fails for another reason;
// l is closed when it returns. Connections are served as Serve's are.
func (b *Broker) ServeWebsocket(l net.Listener) error {
	if b.opts.TLSConfig != nil {
		l = tls.NewListener(l, b.opts.TLSConfig)
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	b.listeners[l] = struct{}{}
	b.mu.Unlock()
	srv := &http.Server{
		Handler:           b.WebsocketHandler(),
		ReadHeaderTimeout: connectTimeout,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	err := srv.Serve(l)
	srv.Close() // idle HTTP connections; upgraded ones are the broker's
	b.mu.Lock()
	delete(b.listeners, l)
	closing := b.closing
	b.mu.Unlock()
	if closing || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
