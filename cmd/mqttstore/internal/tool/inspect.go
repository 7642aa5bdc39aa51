package tool

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/archive"
	"github.com/mqttstore/mqttstore/persistence"
)

// StoreInfo is a store's metadata as reports show it.
type StoreInfo struct {
	Driver        string    `json:"driver"`
	SchemaVersion uint32    `json:"schema_version"`
	SDKVersion    string    `json:"sdk_version"`
	CreatedAt     time.Time `json:"created_at"`
}

// Totals are the number and payload bytes of one kind of record.
type Totals struct {
	Count uint64 `json:"count"`
	Bytes uint64 `json:"bytes"`
}

// Queue is one (session, class) queue and its length.
type Queue struct {
	Session string `json:"session"`
	Class   string `json:"class"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// InspectReport is what inspect shows of a whole store.
type InspectReport struct {
	Store StoreInfo `json:"store"`
	// Kinds holds the totals per kind (keys as in archive.Keys); bytes are the
	// encoded record sizes.
	Kinds map[archive.DigestKey]Totals `json:"kinds"`
	// Wills counts sessions whose state holds a will.
	Wills uint64 `json:"wills"`
	// Largest are the longest queues, longest first.
	Largest []Queue `json:"largest_queues"`
	// UnfinishedCopy is set when the store holds an import/migrate progress marker.
	UnfinishedCopy bool `json:"unfinished_copy,omitempty"`
}

func info(ctx context.Context, st Store) (StoreInfo, error) {
	i, err := storeInfo(ctx, st)
	return StoreInfo{Driver: i.Driver, SchemaVersion: i.SchemaVersion, SDKVersion: i.SDKVersion, CreatedAt: i.CreatedAt}, err
}

// Inspect reads every record of the store at storeURL and returns totals and the
// top longest queues.
func Inspect(ctx context.Context, storeURL string, top int, o Options) (*InspectReport, error) {
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rep := &InspectReport{Kinds: map[archive.DigestKey]Totals{}}
	if rep.Store, err = info(ctx, st); err != nil {
		return nil, err
	}
	if rep.UnfinishedCopy, err = st.Sessions().Exists(ctx, markerID); err != nil {
		return nil, err
	}
	total, err := o.total(ctx, st)
	if err != nil {
		return nil, err
	}
	prog := o.progress("inspect", total)
	sum := archive.Summary{}
	var q Queue
	flushQ := func() {
		if q.Packets > 0 {
			rep.Largest = insertTop(rep.Largest, q, top)
		}
		q = Queue{}
	}
	err = walk(ctx, st, func(r *archive.Record) error {
		prog.Add(1, recordBytes(r))
		if r.Kind == archive.KindState && r.State.Will != nil {
			rep.Wills++
		}
		if r.Kind == archive.KindPacket {
			if r.ID != q.Session || r.Class.String() != q.Class {
				flushQ()
				q.Session, q.Class = r.ID, r.Class.String()
			}
			q.Packets++
			q.Bytes += uint64(len(r.Packet.Data))
		}
		return sum.Add(r)
	})
	prog.Done()
	flushQ()
	if err != nil {
		return rep, err
	}
	for _, k := range archive.Keys() {
		rep.Kinds[k] = Totals{Count: sum[k].Count, Bytes: sum[k].Bytes}
	}
	return rep, nil
}

func insertTop(qs []Queue, q Queue, top int) []Queue {
	if top <= 0 {
		return qs
	}
	i, _ := slices.BinarySearchFunc(qs, q, func(a, b Queue) int { return cmp.Compare(b.Packets, a.Packets) })
	qs = slices.Insert(qs, i, q)
	if len(qs) > top {
		qs = qs[:top]
	}
	return qs
}

// PacketView is one packet as inspect --session shows it.
type PacketView struct {
	Seq      uint64    `json:"seq"`
	PacketID uint16    `json:"packet_id"`
	QoS      uint8     `json:"qos"`
	Protocol uint8     `json:"protocol_version"`
	ExpireAt time.Time `json:"expire_at,omitzero"`
	Bytes    int       `json:"bytes"`
	Topic    string    `json:"topic,omitempty"`
}

// SessionView is one session in full.
type SessionView struct {
	ID            string                     `json:"id"`
	Base          persistence.SessionBase    `json:"base"`
	State         *persistence.SessionState  `json:"state,omitempty"`
	WillTopic     string                     `json:"will_topic,omitempty"`
	Expiry        *persistence.SessionExpiry `json:"expiry,omitempty"`
	Subscriptions []persistence.Subscription `json:"subscriptions"`
	Counts        map[string]uint64          `json:"packet_counts"`
	Packets       map[string][]PacketView    `json:"packets"`
}

// InspectSession returns session id in full, with at most limit packets per class.
func InspectSession(ctx context.Context, storeURL, id string, limit int) (*SessionView, error) {
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	sess := st.Sessions()
	ok, err := sess.Exists(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, persistence.ErrNotFound
	}
	v := &SessionView{ID: id, Counts: map[string]uint64{}, Packets: map[string][]PacketView{}}
	// The base is only available through LoadForEach.
	err = sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		if ls.ID != id {
			return nil
		}
		v.Base, v.State, v.Expiry = ls.Base, ls.State, ls.Expiry
		v.Subscriptions = ls.Subscriptions
		return persistence.ErrStopIteration
	})
	if err != nil {
		return nil, err
	}
	if v.State != nil && v.State.Will != nil {
		v.WillTopic = PublishTopic(v.State.Will.Data)
	}
	slices.SortFunc(v.Subscriptions, func(a, b persistence.Subscription) int { return cmp.Compare(a.Filter, b.Filter) })
	for _, c := range persistence.PacketClasses {
		n, err := sess.PacketCount(ctx, id, c)
		if err != nil {
			return nil, err
		}
		v.Counts[c.String()] = n
		var list []PacketView
		err = sess.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
			if len(list) >= limit {
				return false, persistence.ErrStopIteration
			}
			list = append(list, viewPacket(p))
			return false, nil
		})
		if err != nil {
			return nil, err
		}
		v.Packets[c.String()] = list
	}
	return v, nil
}

func viewPacket(p *persistence.PersistedPacket) PacketView {
	return PacketView{Seq: p.Seq, PacketID: p.PacketID, QoS: p.QoS, Protocol: p.ProtocolVersion, ExpireAt: p.ExpireAt, Bytes: len(p.Data), Topic: PublishTopic(p.Data)}
}

// RetainedView is one retained message as inspect --retained shows it.
type RetainedView struct {
	Topic string `json:"topic"`
	PacketView
}

// InspectRetained lists the retained messages matching any of filters, sorted by
// topic, at most limit of them.
func InspectRetained(ctx context.Context, storeURL string, filters []string, limit int) ([]RetainedView, error) {
	for _, f := range filters {
		if err := persistence.ValidFilter(f); err != nil {
			return nil, err
		}
	}
	st, err := Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var out []RetainedView
	err = st.Retained().LoadMatching(ctx, filters, func(m *persistence.RetainedMessage) error {
		out = append(out, RetainedView{Topic: m.Topic, PacketView: viewPacket(m.Packet)})
		return nil
	})
	slices.SortFunc(out, func(a, b RetainedView) int { return cmp.Compare(a.Topic, b.Topic) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// PublishTopic returns the topic of an MQTT PUBLISH packet (3.1.1 or 5.0: the topic
// comes first in both), or "" when data is not a well-formed PUBLISH.
func PublishTopic(data []byte) string {
	if len(data) < 2 || data[0]>>4 != 3 {
		return ""
	}
	i := 1
	for n := 0; ; n++ { // remaining length varint
		if i >= len(data) || n == 4 {
			return ""
		}
		b := data[i]
		i++
		if b&0x80 == 0 {
			break
		}
	}
	if i+2 > len(data) {
		return ""
	}
	l := int(data[i])<<8 | int(data[i+1])
	i += 2
	if i+l > len(data) {
		return ""
	}
	return string(data[i : i+l])
}
