// Package mochi is a storage hook for Mochi MQTT v2 (github.com/mochi-mqtt/server/v2)
// backed by any mqttstore store URL, so that a Mochi server keeps its sessions,
// subscriptions, in-flight messages and retained messages in the SDK's drivers
// (bolt, badger, postgres, …) with their group commit and crash safety:
//
//	import (
//		mochistore "github.com/mqttstore/mqttstore/adapters/mochi"
//		_ "github.com/mqttstore/mqttstore/providers/bolt" // the driver(s) you use
//	)
//
//	err := server.AddHook(new(mochistore.Hook), &mochistore.Options{URL: "bolt:///var/lib/mochi/state.db"})
//
// How Mochi's records map onto the store:
//
//   - A client whose session outlives its connection (MQTT 3.1.1 clean session 0,
//     or 5.0 session expiry interval > 0) is a session of the store, created when
//     Mochi establishes it; its state's UserData holds Mochi's client record
//     (storage.Client as JSON, will included), its ProtocolVersion, Username and
//     ExpiryInterval the typed copies. Sessions that end with their connection are
//     never written: Mochi discards them at restart anyway.
//   - Subscriptions are the session's subscriptions (options and identifier kept).
//   - In-flight messages are packets: outbound PUBLISH and PUBREL in ClassUnAck,
//     inbound QoS 2 state (Mochi's PUBREC) in ClassIncoming, each stored as the
//     MQTT 5.0 packet bytes. Mochi keys them by packet id; the hook keeps the
//     packet id → sequence number map in memory (rebuilt from the store at start).
//     A resend that only sets DUP is not written again.
//   - Retained messages are the store's retained messages.
//
// Durability: every write is committed (with the driver's sync setting) before the
// hook returns to Mochi, except acknowledgement deletes (OnQosComplete), which are
// batched and committed by a background writer: a crash before they commit makes
// Mochi resend a message the client had acknowledged (a DUP redelivery, which QoS 1
// and 2 allow). Mochi calls most hooks from the client's goroutine, so writes from
// different clients share commits (the SDK's group commit).
//
// The publish journal. Mochi acknowledges a QoS 1 publisher (PUBACK; PUBREC for QoS
// 2) before it hands the message to its subscribers, which is where it calls
// OnQosPublish for them (server.go, processPublish: cl.WritePacket(ack) comes before
// s.publishToSubscribers(pk)), so a crash between the two loses an acknowledged
// message whatever the storage does with OnQosPublish. Mochi does call OnPublish
// before the acknowledgement and OnPublished after the subscribers' OnQosPublish,
// so with Options.Server set the hook closes that window: OnPublish commits the
// message to a journal (the session JournalID) before Mochi acknowledges it,
// OnPublished deletes it (in the background), and at the next start (OnStarted)
// every message left in the journal is published again through an inline client.
// A crash in the window then causes a duplicate delivery instead of a loss (QoS 1
// allows duplicates; for QoS 2 this trades exactly-once for at-least-once in that
// crash case). Replayed messages carry the inline client as their origin, so a
// NoLocal subscription of the original publisher may receive them.
package mochi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/persistence"
)

// Options configures the hook. Exactly one of URL and Store is required.
type Options struct {
	// URL is the store to open, e.g. "bolt:///var/lib/mochi/state.db?sync=always";
	// its driver package must be imported. The hook closes it on Stop.
	URL string `yaml:"url" json:"url"`
	// Store is an already open store; the caller closes it after the server stops.
	Store Store `yaml:"-" json:"-"`
	// Timeout bounds each store call (default 30s).
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Server, when set, turns on the publish journal (see the package
	// documentation): acknowledged messages survive a crash before Mochi has handed
	// them to their subscribers. It must be the server the hook is added to.
	Server *mqtt.Server `yaml:"-" json:"-"`
}

// JournalID is the session that holds the publish journal. MQTT client identifiers
// cannot contain U+0000, so no client can own it.
const JournalID = "\x00mochi/publish-journal"

// ErrConfig reports bad Options.
var ErrConfig = errors.New("mochi adapter: invalid options")

type flightKey struct {
	client string
	id     uint16
}

// flightRef is where an in-flight packet is stored. Its sequence number is in *seq
// because a packet appended by the background writer gets it only when the writer
// commits; only the writer reads it after that (see writer.go).
type flightRef struct {
	class persistence.PacketClass
	seq   *uint64
	typ   byte
}

// Hook is the Mochi storage hook. Register it with server.AddHook.
type Hook struct {
	mqtt.HookBase
	store   Store
	own     bool
	sess    sessionsAPI
	ret     retainedAPI
	timeout time.Duration

	mu       sync.Mutex
	known    map[string]bool // sessions in the store
	inflight map[flightKey]flightRef

	ops      chan writeOp
	opsDone  chan struct{}
	stopOnce sync.Once

	server  *mqtt.Server
	journal map[flightKey]uint64 // (publisher, packet id) → journal sequence number
}

// ID returns the hook's id.
func (h *Hook) ID() string { return "mqttstore" }

// Provides says which hook events the hook handles.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage,
		mqtt.OnWillSent,
		mqtt.OnQosPublish,
		mqtt.OnQosComplete,
		mqtt.OnQosDropped,
		mqtt.OnClientExpired,
		mqtt.OnRetainedExpired,
		mqtt.StoredClients,
		mqtt.StoredInflightMessages,
		mqtt.StoredRetainedMessages,
		mqtt.StoredSubscriptions,
		mqtt.OnPublish,
		mqtt.OnPublished,
		mqtt.OnStarted,
	}, []byte{b})
}

// Init opens the store. config must be *Options.
func (h *Hook) Init(config any) error {
	o, ok := config.(*Options)
	if !ok || o == nil {
		return mqtt.ErrInvalidConfigType
	}
	if (o.URL == "") == (o.Store == nil) {
		return fmt.Errorf("%w: set exactly one of URL and Store", ErrConfig)
	}
	h.timeout = o.Timeout
	if h.timeout <= 0 {
		h.timeout = 30 * time.Second
	}
	h.store = o.Store
	if o.URL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		defer cancel()
		st, err := openStore(ctx, o.URL)
		if err != nil {
			return err
		}
		h.store, h.own = st, true
	}
	h.sess, h.ret = h.store.Sessions(), h.store.Retained()
	h.known = map[string]bool{}
	h.inflight = map[flightKey]flightRef{}
	h.journal = map[flightKey]uint64{}
	if o.Server != nil {
		ctx, cancel := h.ctx()
		defer cancel()
		err := h.sess.Create(ctx, JournalID, persistence.SessionBase{CreatedAt: time.Now()})
		if err != nil && !errors.Is(err, persistence.ErrAlreadyExists) {
			return fmt.Errorf("mochi adapter: create the publish journal: %w", err)
		}
		h.server = o.Server
	}
	h.ops = make(chan writeOp, 4096)
	h.opsDone = make(chan struct{})
	go h.writer()
	return nil
}

// Stop commits pending acknowledgement deletes and closes a store the hook opened.
func (h *Hook) Stop() error {
	var err error
	h.stopOnce.Do(func() {
		if h.ops == nil {
			return
		}
		close(h.ops)
		<-h.opsDone
		if h.own {
			err = h.store.Close()
		}
	})
	return err
}

func (h *Hook) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.timeout)
}

func (h *Hook) logErr(op, client string, err error) {
	if err != nil && h.Log != nil {
		h.Log.Error("mqttstore hook: "+op, "client", client, "error", err)
	}
}

// persistent reports whether cl's session outlives its connection (Mochi's own
// rule in loadClients).
func persistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func (h *Hook) isKnown(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.known[id]
}

func clientRecord(cl *mqtt.Client) storage.Client {
	props := cl.Properties.Props.Copy(false)
	return storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: props.SessionExpiryInterval, SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod: props.AuthenticationMethod, AuthenticationData: props.AuthenticationData,
			RequestProblemInfo: props.RequestProblemInfo, RequestProblemInfoFlag: props.RequestProblemInfoFlag,
			RequestResponseInfo: props.RequestResponseInfo, ReceiveMaximum: props.ReceiveMaximum,
			TopicAliasMaximum: props.TopicAliasMaximum, User: props.User, MaximumPacketSize: props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}
}

func clientState(cl *mqtt.Client) (*persistence.SessionState, error) {
	js, err := json.Marshal(clientRecord(cl))
	if err != nil {
		return nil, err
	}
	st := &persistence.SessionState{
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Username:        string(cl.Properties.Username),
		ExpiryInterval:  time.Duration(cl.Properties.Props.SessionExpiryInterval) * time.Second,
		WillDelay:       time.Duration(cl.Properties.Will.WillDelayInterval) * time.Second,
		UserData:        js,
	}
	if cl.Properties.ProtocolVersion < 5 {
		st.ExpiryInterval = -1 // 3.1.1 persistent sessions: Mochi's server-wide maximum applies
	}
	return st, nil
}

// OnSessionEstablished records a persistent client's session (a clean start
// replaces the stored one) and deletes a stored session the client no longer wants.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	ctx, cancel := h.ctx()
	defer cancel()
	if !persistent(cl) {
		if h.isKnown(cl.ID) {
			h.deleteSession(ctx, cl.ID)
		}
		return
	}
	st, err := clientState(cl)
	if err != nil {
		h.logErr("encode client", cl.ID, err)
		return
	}
	var b persistence.Batch
	known := h.isKnown(cl.ID)
	if known && pk.Connect.Clean {
		b.Delete(cl.ID)
		h.forgetFlights(cl.ID)
		known = false
	}
	if !known {
		b.Create(cl.ID, persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: cl.Properties.ProtocolVersion})
	}
	b.StateStore(cl.ID, st)
	if _, err := h.sess.Apply(ctx, &b); err != nil {
		h.logErr("store session", cl.ID, err)
		return
	}
	h.mu.Lock()
	h.known[cl.ID] = true
	h.mu.Unlock()
}

// OnWillSent stores the client record without its will.
func (h *Hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if !h.isKnown(cl.ID) {
		return
	}
	st, err := clientState(cl)
	if err != nil {
		h.logErr("encode client", cl.ID, err)
		return
	}
	ctx, cancel := h.ctx()
	defer cancel()
	h.logErr("store session state", cl.ID, h.sess.StateStore(ctx, cl.ID, st))
}

func (h *Hook) forgetFlights(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.inflight {
		if k.client == id {
			delete(h.inflight, k)
		}
	}
}

func (h *Hook) deleteSession(ctx context.Context, id string) {
	h.forgetFlights(id)
	if err := h.sess.Delete(ctx, id); err != nil {
		h.logErr("delete session", id, err)
		return
	}
	h.mu.Lock()
	delete(h.known, id)
	h.mu.Unlock()
}

// OnDisconnect deletes the session of a client whose session ends with it.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire || cl.StopCause() == packets.ErrSessionTakenOver || !h.isKnown(cl.ID) {
		return
	}
	ctx, cancel := h.ctx()
	defer cancel()
	h.deleteSession(ctx, cl.ID)
}

// OnClientExpired deletes an expired client's session.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	if !h.isKnown(cl.ID) {
		return
	}
	ctx, cancel := h.ctx()
	defer cancel()
	h.deleteSession(ctx, cl.ID)
}

// OnSubscribed stores the granted subscriptions of a persistent session.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if !h.isKnown(cl.ID) {
		return
	}
	subs := make([]persistence.Subscription, 0, len(pk.Filters))
	for i, f := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] > 2 {
			continue // refused
		}
		subs = append(subs, persistence.Subscription{
			Filter: f.Filter, QoS: reasonCodes[i], NoLocal: f.NoLocal, RetainAsPublished: f.RetainAsPublished,
			RetainHandling: f.RetainHandling, ID: uint32(max(f.Identifier, 0)),
		})
	}
	if len(subs) == 0 {
		return
	}
	ctx, cancel := h.ctx()
	defer cancel()
	h.logErr("store subscriptions", cl.ID, h.sess.SubscriptionsStore(ctx, cl.ID, subs...))
}

// OnUnsubscribed deletes subscriptions of a persistent session.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !h.isKnown(cl.ID) || len(pk.Filters) == 0 {
		return
	}
	filters := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		filters[i] = f.Filter
	}
	ctx, cancel := h.ctx()
	defer cancel()
	h.logErr("delete subscriptions", cl.ID, h.sess.SubscriptionsDelete(ctx, cl.ID, filters...))
}

// OnRetainMessage stores (r >= 0) or deletes (r == -1) the retained message of a topic.
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	ctx, cancel := h.ctx()
	defer cancel()
	if r == -1 {
		h.logErr("delete retained", cl.ID, h.ret.Delete(ctx, pk.TopicName))
		return
	}
	p, err := toPersisted(pk)
	if err != nil {
		h.logErr("encode retained", cl.ID, err)
		return
	}
	h.logErr("store retained", cl.ID, h.ret.Put(ctx, pk.TopicName, p))
}

// OnRetainedExpired deletes an expired retained message.
func (h *Hook) OnRetainedExpired(topic string) {
	ctx, cancel := h.ctx()
	defer cancel()
	h.logErr("delete retained", "", h.ret.Delete(ctx, topic))
}

// OnQosPublish stores an in-flight packet of a persistent session: a new packet id
// is appended, a changed packet type (PUBLISH → PUBREL) updates it in place, and a
// resend of the same packet is not written again. The write is committed (by the
// background writer, together with whatever other clients' writes are waiting)
// before OnQosPublish returns.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	typ := pk.FixedHeader.Type
	if typ == packets.Puback || typ == packets.Pubcomp || !h.isKnown(cl.ID) {
		// Mochi completes these at once (OnQosComplete follows the write).
		return
	}
	key := flightKey{cl.ID, pk.PacketID}
	h.mu.Lock()
	ref, exists := h.inflight[key]
	h.mu.Unlock()
	if exists && ref.typ == typ {
		return
	}
	p, err := toPersisted(pk)
	if err != nil {
		h.logErr("encode in-flight packet", cl.ID, err)
		return
	}
	op := writeOp{kind: opUpdate, client: cl.ID, p: p, done: make(chan struct{})}
	if exists {
		op.class, op.seq = ref.class, ref.seq
	} else {
		op.kind, op.class, op.seq = opAppend, persistence.ClassUnAck, new(uint64)
		if typ == packets.Pubrec {
			op.class = persistence.ClassIncoming
		}
		ref = flightRef{class: op.class, seq: op.seq}
	}
	ref.typ = typ
	h.ops <- op
	<-op.done
	h.mu.Lock()
	h.inflight[key] = ref
	h.mu.Unlock()
}

// OnQosComplete deletes a completed in-flight packet (committed in the background).
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	key := flightKey{cl.ID, pk.PacketID}
	h.mu.Lock()
	ref, ok := h.inflight[key]
	delete(h.inflight, key)
	h.mu.Unlock()
	if ok {
		h.ops <- writeOp{kind: opDelete, client: cl.ID, class: ref.class, seq: ref.seq}
	}
}

// OnQosDropped deletes a dropped in-flight packet.
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

// StoredClients returns the stored persistent clients.
func (h *Hook) StoredClients() ([]storage.Client, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	var out []storage.Client
	err := h.sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		if ls.State == nil || len(ls.State.UserData) == 0 {
			return nil // not written by this hook
		}
		var c storage.Client
		if err := json.Unmarshal(ls.State.UserData, &c); err != nil {
			h.logErr("decode client record", ls.ID, err)
			return nil
		}
		out = append(out, c)
		h.mu.Lock()
		h.known[ls.ID] = true
		h.mu.Unlock()
		return nil
	})
	return out, err
}

// StoredSubscriptions returns the subscriptions of every stored client.
func (h *Hook) StoredSubscriptions() ([]storage.Subscription, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	out := []storage.Subscription{}
	err := h.sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		for _, s := range ls.Subscriptions {
			out = append(out, storage.Subscription{
				ID: storage.SubscriptionKey + "_" + ls.ID + ":" + s.Filter, T: storage.SubscriptionKey,
				Client: ls.ID, Filter: s.Filter, Identifier: int(s.ID), RetainHandling: s.RetainHandling,
				Qos: s.QoS, RetainAsPublished: s.RetainAsPublished, NoLocal: s.NoLocal,
			})
		}
		return nil
	})
	return out, err
}

// StoredInflightMessages returns every stored in-flight packet and rebuilds the
// packet id → sequence number map.
func (h *Hook) StoredInflightMessages() ([]storage.Message, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	out := []storage.Message{}
	err := h.sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		for _, c := range []persistence.PacketClass{persistence.ClassUnAck, persistence.ClassIncoming} {
			err := h.sess.PacketsForEach(ctx, ls.ID, c, func(p *persistence.PersistedPacket) (bool, error) {
				m, err := toMessage(ls.ID, p)
				if err != nil {
					h.logErr("decode in-flight packet", ls.ID, err)
					return false, nil
				}
				m.ID = storage.InflightKey + "_" + ls.ID + ":" + fmt.Sprint(m.PacketID)
				m.T = storage.InflightKey
				out = append(out, m)
				h.mu.Lock()
				seq := p.Seq
				h.inflight[flightKey{ls.ID, m.PacketID}] = flightRef{class: c, seq: &seq, typ: m.FixedHeader.Type}
				h.mu.Unlock()
				return false, nil
			})
			if err != nil && !errors.Is(err, persistence.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	return out, err
}

// StoredRetainedMessages returns every stored retained message.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	out := []storage.Message{}
	err := h.ret.Load(ctx, func(m *persistence.RetainedMessage) error {
		msg, err := toMessage("", m.Packet)
		if err != nil {
			h.logErr("decode retained", m.Topic, err)
			return nil
		}
		msg.ID = storage.RetainedKey + "_" + m.Topic
		msg.T = storage.RetainedKey
		msg.TopicName = m.Topic
		out = append(out, msg)
		return nil
	})
	return out, err
}
