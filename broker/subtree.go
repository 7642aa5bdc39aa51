package broker

import (
	"strings"
	"sync"
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
// Lock order: a session's mu may be held when taking the tree's mu, never the
// reverse.
type subTree struct {
	mu   sync.RWMutex
	root subNode
}

type subNode struct {
	filter   string // the filter ending at this node
	children map[string]*subNode
	subs     map[*session]struct{} // sessions subscribed with exactly this filter
}

// add records that s subscribes with filter.
func (t *subTree) add(filter string, s *session) {
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
	if n.subs == nil {
		n.subs = map[*session]struct{}{}
	}
	n.subs[s] = struct{}{}
}

// remove forgets that s subscribes with filter and prunes nodes left empty.
func (t *subTree) remove(filter string, s *session) {
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
	delete(n.subs, s)
	for i := len(levels) - 1; i >= 0; i-- {
		child := path[i+1]
		if len(child.subs) > 0 || len(child.children) > 0 {
			break
		}
		delete(path[i].children, levels[i])
	}
}

// match calls fn for every (filter, session) whose filter could match topic by its
// levels. The caller still checks persistence.MatchTopic, which also applies the
// rule that wildcards do not match a leading "$".
func (t *subTree) match(topic string, fn func(filter string, s *session)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	t.root.match(topic, fn)
}

func (n *subNode) match(rest string, fn func(filter string, s *session)) {
	if h := n.children["#"]; h != nil {
		h.each(fn) // "#" matches the parent level and everything below it
	}
	level, more, found := strings.Cut(rest, "/")
	for _, key := range []string{level, "+"} {
		child := n.children[key]
		if child == nil || (key == "+" && level == "+") {
			continue
		}
		if found {
			child.match(more, fn)
			continue
		}
		child.each(fn)
		if h := child.children["#"]; h != nil {
			h.each(fn) // "a/#" matches "a"
		}
	}
}

func (n *subNode) each(fn func(filter string, s *session)) {
	for s := range n.subs {
		fn(n.filter, s)
	}
}
