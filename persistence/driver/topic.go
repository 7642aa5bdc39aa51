package driver

import (
	"fmt"
	"strings"
)

// MatchTopic reports whether the topic name matches the topic filter, exactly as the
// MQTT 3.1.1 and 5.0 specifications define it (section 4.7):
//
//   - levels are separated by '/', and an empty level is a level;
//   - '+' matches exactly one level, including an empty one;
//   - '#' must be the last level and matches its parent level and any number of
//     child levels ("a/#" matches "a", "a/" and "a/b/c");
//   - a topic starting with '$' is not matched by a filter starting with '+' or '#';
//   - everything else is compared byte for byte, with no normalisation.
//
// A filter with a misplaced wildcard ('#' not last, '+' or '#' inside a level) and an
// empty filter or topic match nothing. The other limits of [ValidFilter] and
// [ValidTopic] (NUL, length, wildcards in the topic) are not checked here: such bytes
// are compared like any other, so stored binary topics stay matchable. Shared
// subscription filters ("$share/group/filter") must be unwrapped with
// [SplitSharedFilter] first.
func MatchTopic(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := cutLevel(filter)
		if fl == "#" {
			return !fmore // '#' must be the last level
		}
		tl, trest, tmore := cutLevel(topic)
		if fl != "+" {
			if strings.ContainsAny(fl, "+#") || fl != tl {
				return false
			}
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// The topic ended; only a trailing "/#" in the filter still matches.
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}

// cutLevel splits s at its first '/': the level, the rest, and whether a '/' was there.
func cutLevel(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// ValidFilter returns nil when filter is a valid MQTT topic filter: non-empty, at most
// 65535 bytes, no NUL, '+' and '#' only as whole levels and '#' only last.
func ValidFilter(filter string) error {
	if err := validName(filter, "topic filter"); err != nil {
		return err
	}
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = cutLevel(rest)
		switch {
		case level == "#" && more:
			return fmt.Errorf("%w: '#' must be the last level of topic filter %q", ErrInvalidArgument, filter)
		case level != "#" && level != "+" && strings.ContainsAny(level, "+#"):
			return fmt.Errorf("%w: wildcard inside a level of topic filter %q", ErrInvalidArgument, filter)
		}
	}
	return nil
}

// ValidTopic returns nil when topic is a valid MQTT topic name: non-empty, at most
// 65535 bytes, no NUL and no wildcard.
func ValidTopic(topic string) error {
	if err := validName(topic, "topic name"); err != nil {
		return err
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w: wildcard in topic name %q", ErrInvalidArgument, topic)
	}
	return nil
}

func validName(s, what string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidArgument, what)
	case len(s) > 65535:
		return fmt.Errorf("%w: %s of %d bytes exceeds 65535", ErrInvalidArgument, what, len(s))
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: NUL in %s", ErrInvalidArgument, what)
	}
	return nil
}

// SplitSharedFilter splits an MQTT 5.0 shared subscription filter
// "$share/group/filter" into its group and filter. ok is false for a filter that is
// not a well-formed shared subscription (no "$share/" prefix, an empty group or
// filter, or '+' or '#' in the group), and filter is then s unchanged.
func SplitSharedFilter(s string) (group, filter string, ok bool) {
	rest, found := strings.CutPrefix(s, "$share/")
	if !found {
		return "", s, false
	}
	group, filter, found = strings.Cut(rest, "/")
	// MQTT 5.0 section 4.8.2: the ShareName must not contain '+' or '#' ('/' is
	// excluded by the Cut).
	if !found || group == "" || filter == "" || strings.ContainsAny(group, "+#") {
		return "", s, false
	}
	return group, filter, true
}

// FilterPrefix returns the literal leading levels of filter, up to and including the
// '/' before the first wildcard level (the whole filter when it has none). Every topic
// the filter matches starts with it, except that "a/#" also matches "a" itself,
// which drivers account for with [MatchTopic]. Ordered-key drivers use it to scan
// only part of their retained index.
func FilterPrefix(filter string) string {
	i := 0
	for {
		level, _, more := cutLevel(filter[i:])
		if level == "+" || level == "#" {
			return filter[:i]
		}
		if !more {
			return filter
		}
		i += len(level) + 1
	}
}
