package auth

import (
	"strings"
	"testing"
)

func TestCovers(t *testing.T) {
	cases := []struct {
		acl, sub string
		want     bool
	}{
		{"a/#", "a/#", true}, {"a/#", "a", true}, {"a/#", "a/b/+", true}, {"a/+", "a/b", true},
		{"a/+", "a/+", true}, {"a/+", "a/#", false}, {"a/b", "a/+", false}, {"a/b", "a/b", true},
		{"a/b", "a/b/c", false}, {"#", "x/y", true}, {"#", "$SYS/x", false}, {"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker/+", true}, {"a/+/c", "a/b/c", true}, {"a/+/c", "a/b/#", false},
	}
	for _, c := range cases {
		if got := covers(c.acl, c.sub); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.acl, c.sub, got, c.want)
		}
	}
}

func TestACL(t *testing.T) {
	a, err := ParseACL(strings.NewReader(`
# anonymous
topic read public/#
user alice
topic readwrite alice/#
topic write cmd/+
user bob
topic cmd/#
pattern readwrite devices/%c/#
pattern read inbox/%u
`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		write            bool
		user, id, filter string
		want             bool
	}{
		{false, "", "x", "public/a", true}, {true, "", "x", "public/a", false},
		{false, "alice", "x", "public/a", false}, // anonymous rules are not every user's
		{true, "alice", "x", "alice/1", true}, {false, "alice", "x", "alice/#", true},
		{true, "alice", "x", "cmd/go", true}, {false, "alice", "x", "cmd/go", false},
		{true, "bob", "x", "cmd/a/b", true}, {false, "bob", "x", "cmd/#", true},
		{true, "alice", "c1", "devices/c1/t", true}, {true, "alice", "c1", "devices/c2/t", false},
		{true, "", "c1", "devices/c1/t", true}, // patterns apply to anonymous clients
		{false, "", "c1", "inbox/", false}, {false, "bob", "c", "inbox/bob", true}, {true, "bob", "c", "inbox/bob", false},
		{true, "alice", "c/+", "devices/c/+/t", false}, // a client id with wildcards gets no pattern rule
		{false, "alice", "x", "$share/g/alice/a", true}, {false, "alice", "x", "$share/g/bob/a", false},
		{true, "carol", "x", "alice/1", false}, // unknown users have no rules but patterns
	}
	for _, c := range checks {
		var got bool
		if c.write {
			got = a.CanWrite(c.user, c.id, c.filter)
		} else {
			got = a.CanRead(c.user, c.id, c.filter)
		}
		if got != c.want {
			t.Errorf("write=%v user=%q id=%q %q: %v, want %v", c.write, c.user, c.id, c.filter, got, c.want)
		}
	}
	for _, bad := range []string{"topic", "topic read", "frobnicate x", "topic read a/#/b", "user"} {
		if _, err := ParseACL(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseACL(%q) accepted", bad)
		}
	}
}

func TestPasswords(t *testing.T) {
	path := t.TempDir() + "/passwd"
	if err := AddUser(path, "alice", "one"); err != nil {
		t.Fatal(err)
	}
	if err := AddUser(path, "bob", "two"); err != nil {
		t.Fatal(err)
	}
	if err := AddUser(path, "alice", "three"); err != nil { // replaces
		t.Fatal(err)
	}
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || !p.Check("alice", []byte("three")) || p.Check("alice", []byte("one")) ||
		!p.Check("bob", []byte("two")) || p.Check("carol", []byte("two")) {
		t.Fatalf("passwords: %d users, checks wrong", len(p))
	}
	if _, err := ParsePasswords(strings.NewReader("alice:plaintext\n")); err == nil {
		t.Fatal("a plain-text password was accepted")
	}
	for _, bad := range []string{"", "a:b", "a\nb"} {
		if err := AddUser(path, bad, "x"); err == nil {
			t.Errorf("AddUser(%q) accepted", bad)
		}
	}
}
