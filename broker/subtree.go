package broker

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqttstore/mqttstore/persistence"
)

// subTree indexes every session's subscriptions by topic filter level, so that
// routing a message costs the depth of the topic and the number of matching
// filters, not the number of sessions.
//
// It only proposes candidates: the session's own subs map (under its lock) stays
// the authority for which subscriptions exist and with which options, and the
// final decision is persistence.MatchTopic's. So the tree may hold an entry a
// moment longer than the session (match skips it), but never lacks one: an entry
// is added before the subscription is visible in the session, and removed only
// under the session's lock once the subscription is gone from it.
//
// A shared subscription ("$share/group/filter") is indexed under its filter's
// node, in the node's group of that name; the subscription's key in the
// session's subs map stays the full "$share/group/filter".
//
// Lock order: a session's mu may be held when taking the tree's mu, never the
// reverse.
type subTree struct {
	mu   sync.RWMutex
	root subNode
}

type subNode struct {
	filter   string // the filter ending at this node
	children map[string]*subNode
	subs     map[*session]struct{}  // sessions subscribed with exactly this filter
	groups   map[string]*shareGroup // shared subscriptions on this filter, by share name
}

// shareGroup is the set of sessions subscribed with one "$share/name/filter".
type shareGroup struct {
	key     string     // "$share/name/filter": the subscription's key in each member's subs
	filter  string     // the topic filter
	members []*session // guarded by the tree's mu
	next    atomic.Uint32
}

func (n *subNode) empty() bool {
	return len(n.subs) == 0 && len(n.children) == 0 && len(n.groups) == 0
}

// add records that s subscribes with key (a topic filter or a shared
// subscription's full filter).
func (t *subTree) add(key string, s *session) {
	group, filter, shared := persistence.SplitSharedFilter(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for level := range strings.SplitSeq(filter, "/") {
		next := n.children[level]
		if next == nil {
			if n.children == nil {
				n.children = map[string]*subNode{}
			}
			next = &subNode{}
			n.children[level] = next
		}
		n = next
	}
	n.filter = filter
	if shared {
		g := n.groups[group]
		if g == nil {
			if n.groups == nil {
				n.groups = map[string]*shareGroup{}
			}
			g = &shareGroup{key: key, filter: filter}
			n.groups[group] = g
		}
		for _, m := range g.members {
			if m == s {
				return
			}
		}
		g.members = append(g.members, s)
		return
	}
	if n.subs == nil {
		n.subs = map[*session]struct{}{}
	}
	n.subs[s] = struct{}{}
}

// remove forgets that s subscribes with key and prunes nodes left empty.
func (t *subTree) remove(key string, s *session) {
	group, filter, shared := persistence.SplitSharedFilter(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	levels := strings.Split(filter, "/")
	path := make([]*subNode, 0, len(levels)+1)
	n := &t.root
	path = append(path, n)
	for _, level := range levels {
		if n = n.children[level]; n == nil {
			return
		}
		path = append(path, n)
	}
	if shared {
		if g := n.groups[group]; g != nil {
			for i, m := range g.members {
				if m == s {
					// A new slice: match's callers may still hold the old one.
					g.members = append(g.members[:i:i], g.members[i+1:]...)
					break
				}
			}
			if len(g.members) == 0 {
				delete(n.groups, group)
			}
		}
	} else {
		delete(n.subs, s)
	}
	for i := len(levels) - 1; i >= 0; i-- {
		if !path[i+1].empty() {
			break
		}
		delete(path[i].children, levels[i])
	}
}

// match calls fn for every (filter, session) whose filter could match topic by its
// levels. The caller still checks persistence.MatchTopic, which also applies the
// rule that wildcards do not match a leading "$".
func (t *subTree) match(topic string, fn func(filter string, s *session)) {
	t.matchAll(topic, fn, nil)
}

// matchAll is match that also calls gfn (when non-nil) for every share group
// whose filter could match topic, with a snapshot of its members that the caller
// may keep.
func (t *subTree) matchAll(topic string, fn func(filter string, s *session), gfn func(g *shareGroup, members []*session)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	t.root.match(topic, fn, gfn)
}

func (n *subNode) match(rest string, fn func(filter string, s *session), gfn func(*shareGroup, []*session)) {
	if h := n.children["#"]; h != nil {
		h.each(fn, gfn) // "#" matches the parent level and everything below it
	}
	level, more, found := strings.Cut(rest, "/")
	for _, key := range [2]string{level, "+"} {
		child := n.children[key]
		if child == nil || (key == "+" && level == "+") {
			continue
		}
		if found {
			child.match(more, fn, gfn)
			continue
		}
		child.each(fn, gfn)
		if h := child.children["#"]; h != nil {
			h.each(fn, gfn) // "a/#" matches "a"
		}
	}
}

func (n *subNode) each(fn func(filter string, s *session), gfn func(*shareGroup, []*session)) {
	for s := range n.subs {
		fn(n.filter, s)
	}
	if gfn != nil {
		for _, g := range n.groups {
			// members is replaced, never changed in place, so the snapshot
			// stays valid after the lock is released.
			gfn(g, g.members)
		}
	}
}
