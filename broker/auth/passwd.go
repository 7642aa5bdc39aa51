package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// ErrBadCredentials is returned by Authenticate for an unknown user or a wrong
// password; the broker answers CONNACK 0x86 (3.1.1: return code 4).
var ErrBadCredentials = errors.New("auth: bad user name or password")

// Passwords is a parsed password file: user name → bcrypt hash.
//
// The file has one "user:hash" line per user, where hash is a bcrypt hash as
// made by HashPassword (or htpasswd -B); empty lines and lines starting with '#'
// are ignored.
type Passwords map[string][]byte

// ParsePasswords reads a password file.
func ParsePasswords(r io.Reader) (Passwords, error) {
	p := Passwords{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("auth: password file line %d: want user:hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("auth: password file line %d: user %q: not a bcrypt hash: %w", n, user, err)
		}
		p[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: reading password file: %w", err)
	}
	return p, nil
}

// LoadPasswords reads the password file at path.
func LoadPasswords(path string) (Passwords, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	return ParsePasswords(f)
}

// Check reports whether password is user's.
func (p Passwords) Check(user string, password []byte) bool {
	hash, ok := p[user]
	if !ok {
		// Same work as for a known user, so timing does not tell users apart.
		bcrypt.CompareHashAndPassword(dummyHash(), password)
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, password) == nil
}

// hashCost is the bcrypt cost of new hashes; the package's tests lower it.
var hashCost = bcrypt.DefaultCost

// dummyHash is compared against for unknown users; made on first use, so that
// importing the package costs nothing.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("unknown user"), hashCost)
	return h
})

// HashPassword returns the bcrypt hash (default cost) of password for a
// password file.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), hashCost)
	if err != nil {
		return "", fmt.Errorf("auth: hashing password: %w", err)
	}
	return string(h), nil
}

// AddUser sets user's password in the password file at path, creating the file
// (mode 0600) if needed and keeping the other lines. The file is replaced
// atomically.
func AddUser(path, user, password string) error {
	if user == "" || strings.ContainsAny(user, ":\n\r") {
		return fmt.Errorf("auth: invalid user name %q", user)
	}
	if password == "" {
		return errors.New("auth: empty password")
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("auth: %w", err)
	}
	var out bytes.Buffer
	replaced := false
	for line := range strings.Lines(string(old)) {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && name == user {
			fmt.Fprintf(&out, "%s:%s\n", user, hash)
			replaced = true
			continue
		}
		out.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			out.WriteByte('\n')
		}
	}
	if !replaced {
		fmt.Fprintf(&out, "%s:%s\n", user, hash)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".passwd-*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}
