package persistence

import (
	"net/url"
	"regexp"
	"strings"
)

// secretParams are the URL options whose values are secrets.
var secretParams = []string{"password", "sslpassword"}

// Redact returns dsn with its password, and the values of options that hold
// secrets (password, sslpassword, …), replaced by "xxxxx". A dsn that
// cannot be parsed is reduced to its scheme, so that nothing of it leaks.
// Use it wherever a store URL may be printed.
func Redact(dsn string) string {
	if !strings.Contains(dsn, "://") {
		// Not a URL: possibly a keyword/value DSN ("host=h password=p").
		return keywordSecret.ReplaceAllString(dsn, "${1}xxxxx")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		if i := strings.Index(dsn, "://"); i > 0 {
			return dsn[:i] + "://(unparsable URL)"
		}
		return "(unparsable store URL)"
	}
	return redactURL(u)
}

func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	q := c.Query()
	changed := false
	for k := range q {
		for _, p := range secretParams {
			if strings.EqualFold(k, p) {
				q[k] = []string{"xxxxx"}
				changed = true
			}
		}
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// keywordSecret matches a secret of a keyword/value DSN: password=p,
// sslpassword = 'p q'. Group 1 is what comes before the value, group 2 the value.
var keywordSecret = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'][^\s]*)`)

// secrets returns the secret strings of dsn: its password and secret option values.
func secrets(dsn string) []string {
	var out []string
	if !strings.Contains(dsn, "://") {
		for _, m := range keywordSecret.FindAllStringSubmatch(dsn, -1) {
			out = append(out, m[2], strings.Trim(m[2], "'"))
		}
		return out
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// Without a parse, the best guess is the text between the last ':' before
		// '@' and the '@'.
		if at := strings.LastIndex(dsn, "@"); at > 0 {
			userinfo := dsn[:at]
			if i := strings.Index(userinfo, "://"); i >= 0 {
				userinfo = userinfo[i+3:]
			}
			if c := strings.Index(userinfo, ":"); c >= 0 && c+1 < len(userinfo) {
				out = append(out, userinfo[c+1:])
			}
		}
		return out
	}
	if u.User != nil {
		if p, has := u.User.Password(); has && p != "" {
			out = append(out, p)
			if e := url.PathEscape(p); e != p {
				out = append(out, e)
			}
		}
	}
	q, _ := url.ParseQuery(u.RawQuery)
	for k, vs := range q {
		for _, p := range secretParams {
			if strings.EqualFold(k, p) {
				for _, v := range vs {
					if v != "" {
						out = append(out, v, url.QueryEscape(v))
					}
				}
			}
		}
	}
	return out
}

// redacted is an error whose message has the secrets of a store URL removed; it
// still matches everything the original matched.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// redactErr returns err with every secret of dsn removed from its message.
func redactErr(err error, dsn string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	for _, s := range secrets(dsn) {
		// A secret of one or two bytes would blank out ordinary words; leaving it
		// readable gives away almost nothing.
		if len(s) >= 3 {
			out = strings.ReplaceAll(out, s, "xxxxx")
		}
	}
	if out == msg {
		return err
	}
	return &redacted{msg: out, err: err}
}
