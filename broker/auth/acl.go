package auth

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mqttstore/mqttstore/persistence"
)

// Access is what an ACL rule allows on its topic filter.
type Access uint8

// Access rights of ACL rules.
const (
	Read      Access = 1 << iota // subscribe with filters the rule's filter covers
	Write                        // publish to topics the rule's filter matches
	ReadWrite = Read | Write
)

type rule struct {
	access  Access
	filter  string
	pattern bool // %u and %c are substituted
}

// ACL is a parsed access control list. Everything not allowed by a rule is
// denied. The file format follows Mosquitto's:
//
//	# rules before any "user" line are for anonymous clients
//	topic read public/#
//
//	user alice
//	topic readwrite alice/#
//	topic write cmd/+
//
//	# "pattern" rules apply to every client, with %u replaced by its user
//	# name and %c by its client id
//	pattern readwrite devices/%c/#
//	pattern read users/%u/inbox
//
// The access word (read, write or readwrite) may be left out, meaning
// readwrite. A pattern rule with %u does not apply to anonymous clients, and a
// rule is skipped for a client whose substituted user name or client id
// contains '/', '+' or '#' (it could otherwise reach other clients' topics).
// Lines are "topic", "pattern" or "user"; empty lines and lines starting with
// '#' are ignored; anything else is an error naming the line.
type ACL struct {
	anonymous []rule
	users     map[string][]rule
	patterns  []rule
}

// ParseACL reads an ACL file.
func ParseACL(r io.Reader) (*ACL, error) {
	a := &ACL{users: map[string][]rule{}}
	anonymous := true // no "user" line yet
	var curUser string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch kw {
		case "user":
			if rest == "" {
				return nil, fmt.Errorf("auth: ACL line %d: user without a name", n)
			}
			anonymous, curUser = false, rest
			if _, ok := a.users[curUser]; !ok {
				a.users[curUser] = nil
			}
		case "topic", "pattern":
			ru, err := parseRule(rest, kw == "pattern")
			if err != nil {
				return nil, fmt.Errorf("auth: ACL line %d: %w", n, err)
			}
			switch {
			case kw == "pattern":
				a.patterns = append(a.patterns, ru)
			case anonymous:
				a.anonymous = append(a.anonymous, ru)
			default:
				a.users[curUser] = append(a.users[curUser], ru)
			}
		default:
			return nil, fmt.Errorf("auth: ACL line %d: unknown keyword %q", n, kw)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: reading ACL: %w", err)
	}
	return a, nil
}

func parseRule(s string, pattern bool) (rule, error) {
	access := ReadWrite
	word, filter, found := strings.Cut(s, " ")
	switch word {
	case "read":
		access = Read
	case "write":
		access = Write
	case "readwrite":
	default:
		filter, found = s, true
	}
	filter = strings.TrimSpace(filter)
	if !found || filter == "" {
		return rule{}, fmt.Errorf("rule without a topic filter")
	}
	check := strings.NewReplacer("%u", "u", "%c", "c").Replace(filter)
	if err := persistence.ValidFilter(check); err != nil {
		return rule{}, err
	}
	return rule{access: access, filter: filter, pattern: pattern}, nil
}

// LoadACL reads the ACL file at path.
func LoadACL(path string) (*ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	return ParseACL(f)
}

// rules calls fn with every rule that applies to the client and its filter
// after substitution, until fn returns true; it reports whether one did.
func (a *ACL) rules(user, clientID string, fn func(access Access, filter string) bool) bool {
	own := a.anonymous
	if user != "" {
		own = a.users[user]
	}
	for _, r := range own {
		if fn(r.access, r.filter) {
			return true
		}
	}
	for _, r := range a.patterns {
		f, ok := substitute(r.filter, user, clientID)
		if ok && fn(r.access, f) {
			return true
		}
	}
	return false
}

func substitute(filter, user, clientID string) (string, bool) {
	if strings.Contains(filter, "%u") {
		if user == "" || strings.ContainsAny(user, "/+#") {
			return "", false
		}
		filter = strings.ReplaceAll(filter, "%u", user)
	}
	if strings.Contains(filter, "%c") {
		if clientID == "" || strings.ContainsAny(clientID, "/+#") {
			return "", false
		}
		filter = strings.ReplaceAll(filter, "%c", clientID)
	}
	return filter, true
}

// CanWrite reports whether the client (user "" for anonymous) may publish to
// topic.
func (a *ACL) CanWrite(user, clientID, topic string) bool {
	return a.rules(user, clientID, func(acc Access, f string) bool {
		return acc&Write != 0 && persistence.MatchTopic(f, topic)
	})
}

// CanRead reports whether the client may subscribe with filter: some read rule's
// filter must match every topic filter matches. A shared subscription
// ("$share/group/filter") is judged by its filter.
func (a *ACL) CanRead(user, clientID, filter string) bool {
	if _, f, ok := persistence.SplitSharedFilter(filter); ok {
		filter = f
	}
	return a.rules(user, clientID, func(acc Access, f string) bool {
		return acc&Read != 0 && covers(f, filter)
	})
}

// covers reports whether every topic that filter sub matches is matched by
// filter acl.
func covers(acl, sub string) bool {
	al := strings.Split(acl, "/")
	sl := strings.Split(sub, "/")
	if (al[0] == "+" || al[0] == "#") && strings.HasPrefix(sl[0], "$") {
		return false // wildcards do not match topics starting with '$'
	}
	for i := 0; ; i++ {
		if i == len(al) {
			return i == len(sl)
		}
		if al[i] == "#" {
			return true
		}
		if i == len(sl) || sl[i] == "#" {
			return false
		}
		if al[i] == "+" {
			continue
		}
		if al[i] != sl[i] {
			return false // a literal covers only itself, not "+"
		}
	}
}
