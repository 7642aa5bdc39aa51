package driver_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// refMatch is the reference MatchTopic: a direct transcription of MQTT 3.1.1/5.0
// section 4.7 over strings.Split, with no cleverness, for the fuzz and property tests.
func refMatch(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	fl := strings.Split(filter, "/")
	for i, l := range fl {
		switch {
		case l == "#" && i != len(fl)-1: // '#' only as the last level
			return false
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"): // wildcards only as whole levels
			return false
		}
	}
	tl := strings.Split(topic, "/")
	// 4.7.2: filters starting with a wildcard do not match topics starting with '$'.
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, l := range fl {
		if l == "#" {
			// Levels 0..i-1 matched, so the topic has at least i levels: '#'
			// matches the parent (exactly i levels) and any children.
			return true
		}
		if i >= len(tl) || (l != "+" && l != tl[i]) {
			return false
		}
	}
	return len(tl) == len(fl)
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		// '#' matches the parent level and any number of children.
		{"a/#", "a", true},
		{"a/#", "a/", true},
		{"a/#", "a/b", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"#", "a", true},
		{"#", "/abc/def", true},
		{"#", "/", true},
		{"#", "a/b/c/d/e/f", true},
		{"/#", "/", true},
		{"/#", "/a", true},
		{"/#", "a", false},
		{"hel/#", "hello/world", false},
		{"hel/#", "hel", true},
		{"hello/+/world/#", "hello/there/world/creatures", true},
		{"hello/+/world/#", "hello/there/world", true},
		{"hello/+/world/#", "hello/there/worlds", false},
		// The examples of MQTT 3.1.1 section 4.7.1.2.
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},

		// '+' matches exactly one level, which may be empty.
		{"+", "a", true},
		{"+", "/a", false},
		{"+", "a/", false},
		{"+", "/", false},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"/a/+/+/", "/a/dfdf/", false},
		{"/a/+/+/", "/a/b/c/", true},
		{"/a/+/+/", "/a//c/", true},
		{"+/+/+", "//", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a//c", true},
		{"a/+/c", "a/b/d", false},
		{"+/#", "a", true},
		{"+/#", "a/b/c", true},
		{"+/+/#", "a", false},
		// The examples of MQTT 3.1.1 section 4.7.1.3.
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/tennis/#", "sport/tennis/x", true},

		// '$' topics (4.7.2): not matched by a leading wildcard, matched literally.
		{"#", "$SYS/x", false},
		{"#", "$SYS", false},
		{"+/x", "$SYS/x", false},
		{"+/#", "$SYS/x", false},
		{"+", "$SYS", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/#", "$SYS", true},
		{"$SYS/+", "$SYS/x", true},
		{"$SYS/+", "$SYS/x/y", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"$SYS", "$SYS", true},
		{"$share/g/#", "a", false}, // a shared filter must be unwrapped first
		// Only a leading '$' is special.
		{"#", "a/$SYS", true},
		{"+/$SYS", "a/$SYS", true},
		{"+/+", "/$SYS", true},

		// No normalisation of any kind.
		{"a/b", "a/b", true},
		{"a/b", "A/b", false},
		{"A/B", "a/b", false},
		{"a/b", "a/b/", false},
		{"a/b/", "a/b", false},
		{"/a", "a", false},
		{"a", "/a", false},
		{"a//b", "a/b", false},
		{"a/b", "a//b", false},
		{"caf\u00e9", "cafe\u0301", false}, // NFC filter, NFD topic
		{"cafe\u0301", "caf\u00e9", false}, // NFD filter, NFC topic
		{"caf\u00e9", "caf\u00e9", true},
		{"a b", "a  b", false},
		{"\xff/\x00", "\xff/\x00", true}, // binary-safe byte comparison

		// Empty levels are levels.
		{"/", "/", true},
		{"//", "//", true},
		{"//", "/", false},
		{"a//", "a//", true},
		{"+//+", "a//b", true},

		// Invalid filters match nothing, not even topics equal to them.
		{"a#", "a#", false},
		{"a#", "a", false},
		{"a/#/b", "a/#/b", false},
		{"a/#/b", "a/x/b", false},
		{"a/#/b", "a", false},
		{"a+", "a+", false},
		{"a+", "ab", false},
		{"+a", "ba", false},
		{"#/", "a/", false},
		{"#/", "/", false},
		{"##", "##", false},
		{"++", "++", false},
		{"a/b#", "a/b#", false},
		{"a/b/c+", "a", false},
		{"a/+b/c", "a/+b/c", false},

		// Empty filter or topic.
		{"", "", false},
		{"", "a", false},
		{"#", "", false},
		{"+", "", false},

		// Wildcard characters in a topic (invalid topic names) are plain bytes.
		{"a/+", "a/+", true},
		{"a/+", "a/#", true},
		{"a/b", "a/#", false},
	}
	for _, tt := range tests {
		if got := driver.MatchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
		// The table also checks the reference, so that the fuzz test compares
		// against something known to be right.
		if got := refMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	valid := []string{
		"#", "+", "a", "a/#", "a/+", "+/+", "+/#", "/", "//", "/+", "/#", "a//b",
		"$SYS/#", "a/+/b/#", "sport/tennis/player1", "$share/g/a/#", "\xff\xfe",
		strings.Repeat("a", 65535),
	}
	for _, f := range valid {
		if err := driver.ValidFilter(f); err != nil {
			t.Errorf("ValidFilter(%.40q) = %v, want nil", f, err)
		}
	}
	invalid := []string{
		"", "a#", "a/#/b", "#/", "#/a", "a+", "+a", "a/b+", "a/+b/c", "##", "++", "+#",
		"a\x00", "\x00", "a/\x00/b",
		strings.Repeat("a", 65536),
	}
	for _, f := range invalid {
		err := driver.ValidFilter(f)
		if !errors.Is(err, driver.ErrInvalidArgument) {
			t.Errorf("ValidFilter(%.40q) = %v, want an error matching ErrInvalidArgument", f, err)
		}
	}
}

func TestValidTopic(t *testing.T) {
	valid := []string{
		"a", "/", "//", "a/b", "/a/", "$SYS/x", "$share/g/a", "caf\u00e9", "\xff",
		strings.Repeat("a", 65535),
	}
	for _, s := range valid {
		if err := driver.ValidTopic(s); err != nil {
			t.Errorf("ValidTopic(%.40q) = %v, want nil", s, err)
		}
	}
	invalid := []string{
		"", "#", "+", "a/+", "a/#", "a+b", "a#b", "a\x00b", "\x00",
		strings.Repeat("a", 65536),
	}
	for _, s := range invalid {
		err := driver.ValidTopic(s)
		if !errors.Is(err, driver.ErrInvalidArgument) {
			t.Errorf("ValidTopic(%.40q) = %v, want an error matching ErrInvalidArgument", s, err)
		}
	}
}

func TestSplitSharedFilter(t *testing.T) {
	tests := []struct {
		in            string
		group, filter string
		ok            bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/g/#", "g", "#", true},
		{"$share/group-1/+/x", "group-1", "+/x", true},
		{"$share/g//", "g", "/", true},
		{"$share/g/$SYS/#", "g", "$SYS/#", true},
		// Not shared subscriptions, or malformed ones: filter is the input.
		{"a/b", "", "a/b", false},
		{"#", "", "#", false},
		{"$share", "", "$share", false},
		{"$share/", "", "$share/", false},
		{"$share/g", "", "$share/g", false},
		{"$share/g/", "", "$share/g/", false},
		{"$share//a", "", "$share//a", false},
		{"$SHARE/g/a", "", "$SHARE/g/a", false}, // case-sensitive
		{"$shared/g/a", "", "$shared/g/a", false},
		{"/$share/g/a", "", "/$share/g/a", false},
		// MQTT 5.0 4.8.2: the ShareName must not contain '+' or '#'.
		{"$share/+/a", "", "$share/+/a", false},
		{"$share/#/a", "", "$share/#/a", false},
		{"$share/g+/a", "", "$share/g+/a", false},
		{"$share/g#/a", "", "$share/g#/a", false},
	}
	for _, tt := range tests {
		group, filter, ok := driver.SplitSharedFilter(tt.in)
		if group != tt.group || filter != tt.filter || ok != tt.ok {
			t.Errorf("SplitSharedFilter(%q) = %q, %q, %v; want %q, %q, %v", tt.in, group, filter, ok, tt.group, tt.filter, tt.ok)
		}
	}
}

func TestFilterPrefix(t *testing.T) {
	tests := []struct{ filter, want string }{
		{"a/b", "a/b"},
		{"a", "a"},
		{"a/b/", "a/b/"},
		{"a/#", "a/"},
		{"a/b/#", "a/b/"},
		{"a/+", "a/"},
		{"a/+/c", "a/"},
		{"a/b/+/d/#", "a/b/"},
		{"#", ""},
		{"+", ""},
		{"+/a", ""},
		{"/+", "/"},
		{"/#", "/"},
		{"//+", "//"},
		{"$SYS/#", "$SYS/"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := driver.FilterPrefix(tt.filter); got != tt.want {
			t.Errorf("FilterPrefix(%q) = %q, want %q", tt.filter, got, tt.want)
		}
	}
}

// checkFilterPrefix is the property drivers rely on when they scan only the keys
// starting with FilterPrefix(f): every topic f matches starts with it, except the
// parent level a trailing "/#" also matches ("a/#" matches "a").
func checkFilterPrefix(t *testing.T, filter, topic string) {
	t.Helper()
	if !driver.MatchTopic(filter, topic) {
		return
	}
	prefix := driver.FilterPrefix(filter)
	if strings.HasPrefix(topic, prefix) {
		return
	}
	if filter == prefix+"#" && topic+"/" == prefix {
		return // "a/b/#" matching its parent "a/b"
	}
	t.Fatalf("MatchTopic(%q, %q) but the topic does not start with FilterPrefix = %q", filter, topic, prefix)
}

// randomName joins random levels drawn from a small alphabet, so that matches,
// empty levels, '$' topics and misplaced wildcards are all frequent.
func randomName(r *rand.Rand, levels []string) string {
	n := 1 + r.IntN(5)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = levels[r.IntN(len(levels))]
	}
	return strings.Join(parts, "/")
}

// TestMatchTopicRandomized compares MatchTopic with refMatch on many random pairs
// (seeded, so a failure is reproducible) and checks the FilterPrefix property.
func TestMatchTopicRandomized(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	filterLevels := []string{"a", "b", "", "+", "#", "$SYS", "a+", "#a", "ab"}
	topicLevels := []string{"a", "b", "", "$SYS", "ab", "+", "#"}
	matches := 0
	for range 200000 {
		f := randomName(r, filterLevels)
		tp := randomName(r, topicLevels)
		got, want := driver.MatchTopic(f, tp), refMatch(f, tp)
		if got != want {
			t.Fatalf("MatchTopic(%q, %q) = %v, reference says %v", f, tp, got, want)
		}
		if got {
			matches++
		}
		checkFilterPrefix(t, f, tp)
	}
	// Guard against a generator that never produces matches (a vacuous test).
	if matches < 1000 {
		t.Fatalf("only %d random pairs matched; the generator is too weak", matches)
	}
}

func FuzzMatchTopic(f *testing.F) {
	seeds := [][2]string{
		{"a/#", "a"}, {"#", "/abc/def"}, {"+", "/a"}, {"+/+", "/finance"},
		{"/a/+/+/", "/a/dfdf/"}, {"hello/+/world/#", "hello/there/world/creatures"},
		{"$SYS/#", "$SYS/x"}, {"+/#", "$SYS/x"}, {"a/#/b", "a/x/b"}, {"a+", "a+"},
		{"", ""}, {"//", "//"}, {"caf\u00e9", "cafe\u0301"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := driver.MatchTopic(filter, topic)
		if want := refMatch(filter, topic); got != want {
			t.Fatalf("MatchTopic(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		checkFilterPrefix(t, filter, topic)
		// A filter without wildcards matches exactly the identical topic.
		if filter != "" && !strings.ContainsAny(filter, "+#") {
			if got != (filter == topic) {
				t.Fatalf("literal filter %q vs topic %q: MatchTopic = %v", filter, topic, got)
			}
		}
		// A filter ValidFilter rejects for its wildcards matches nothing.
		if err := driver.ValidFilter(filter); err != nil && got && !strings.ContainsRune(filter, 0) && len(filter) <= 65535 {
			t.Fatalf("invalid filter %q (%v) matched %q", filter, err, topic)
		}
		_ = driver.FilterPrefix(filter) // must not panic on any input
		driver.SplitSharedFilter(filter)
	})
}
