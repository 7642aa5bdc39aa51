package mem

import "strings"

// topicTrie indexes the retained topics by level, so that LoadMatching visits only
// the part of the topic tree a filter can match instead of every stored topic. It
// holds topics only; the messages stay in the store's map. Guarded by conn.retMu.
type topicTrie struct {
	root tnode
}

// tnode is one level of the topic tree.
type tnode struct {
	parent   *tnode
	level    string // key in parent.children
	children map[string]*tnode
	topic    string // the topic ending at this node, when has
	has      bool
}

// insert adds topic (non-empty); adding a present topic is a no-op.
func (t *topicTrie) insert(topic string) {
	n := &t.root
	for rest, more := topic, true; more; {
		var level string
		level, rest, more = cutLevel(rest)
		c := n.children[level]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*tnode, 1)
			}
			c = &tnode{parent: n, level: level}
			n.children[level] = c
		}
		n = c
	}
	n.topic, n.has = topic, true
}

// remove deletes topic and prunes the nodes left empty; a missing topic is a no-op.
func (t *topicTrie) remove(topic string) {
	n := &t.root
	for rest, more := topic, true; more; {
		var level string
		level, rest, more = cutLevel(rest)
		if n = n.children[level]; n == nil {
			return
		}
	}
	n.topic, n.has = "", false
	for n != &t.root && !n.has && len(n.children) == 0 {
		delete(n.parent.children, n.level)
		n = n.parent
	}
}

// match appends to out every stored topic that filter matches, per
// driver.MatchTopic: a filter with a misplaced wildcard matches nothing, '+'
// and '#' match any level including an empty one, '#' also matches its parent
// level, and a first-level wildcard does not match topics starting with '$'.
func (t *topicTrie) match(filter string, out []string) []string {
	if !matchableFilter(filter) {
		return out
	}
	return t.root.match(filter, true, out)
}

func (n *tnode) match(filter string, root bool, out []string) []string {
	level, rest, more := cutLevel(filter)
	switch level {
	case "#":
		if n.has {
			out = append(out, n.topic)
		}
		for key, c := range n.children {
			if root && strings.HasPrefix(key, "$") {
				continue
			}
			out = c.all(out)
		}
	case "+":
		for key, c := range n.children {
			if root && strings.HasPrefix(key, "$") {
				continue
			}
			out = c.step(rest, more, out)
		}
	default:
		if c := n.children[level]; c != nil {
			out = c.step(rest, more, out)
		}
	}
	return out
}

// step continues a match at n, the node the filter's current level matched.
func (n *tnode) step(rest string, more bool, out []string) []string {
	if !more {
		if n.has {
			out = append(out, n.topic)
		}
		return out
	}
	return n.match(rest, false, out)
}

// all appends every topic at or below n.
func (n *tnode) all(out []string) []string {
	if n.has {
		out = append(out, n.topic)
	}
	for _, c := range n.children {
		out = c.all(out)
	}
	return out
}

// matchableFilter reports whether filter can match anything: non-empty, with '+'
// and '#' only as whole levels and '#' only last.
func matchableFilter(filter string) bool {
	if filter == "" {
		return false
	}
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = cutLevel(rest)
		switch {
		case level == "#":
			if more {
				return false
			}
		case level == "+":
		case strings.ContainsAny(level, "+#"):
			return false
		}
	}
	return true
}

// cutLevel splits s at its first '/': the level, the rest, and whether a '/' was there.
func cutLevel(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
