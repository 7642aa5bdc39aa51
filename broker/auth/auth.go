// Package auth gives the broker password and ACL files, as operators know them
// from Mosquitto: a bcrypt password file (see Passwords, AddUser) and an ACL file
// (see ACL), both reloaded on demand (Reload) or on SIGHUP (ReloadOnSIGHUP).
// An Authorizer turns them into broker.Hooks:
//
//   - CONNECT: a client with a user name must give that user's password
//     (otherwise CONNACK 0x86, 3.1.1 return code 4); a client without one is
//     anonymous and is refused (CONNACK 0x87, 3.1.1 return code 5) unless
//     Config.AllowAnonymous. Without a password file user names are not
//     checked.
//   - SUBSCRIBE: each filter needs a read rule covering it (otherwise SUBACK
//     0x87, 3.1.1 0x80, for that filter).
//   - PUBLISH and wills: the topic needs a write rule (otherwise a 5.0 client
//     gets PUBACK/PUBREC 0x87 and a 3.1.1 client's message is dropped; a will
//     refuses the CONNECT with 0x87 / return code 5).
//
// Without an ACL file every topic is allowed. Read rules are checked when a
// client subscribes, not for each message it then receives.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/mqttstore/mqttstore/broker"
)

// Config names the files of an Authorizer.
type Config struct {
	// PasswordFile is the bcrypt password file; "" means user names are not
	// checked.
	PasswordFile string
	// ACLFile is the ACL file; "" means every topic is allowed.
	ACLFile string
	// AllowAnonymous lets clients connect without a user name.
	AllowAnonymous bool
}

// Authorizer checks clients against a password file and an ACL file. It is safe
// for concurrent use; Reload swaps both files at once.
type Authorizer struct {
	cfg   Config
	state atomic.Pointer[state]
}

type state struct {
	passwords Passwords // nil: no password file
	acl       *ACL      // nil: no ACL file
}

// New loads the files of cfg.
func New(cfg Config) (*Authorizer, error) {
	a := &Authorizer{cfg: cfg}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads both files again. When either fails to load, the files in use
// stay in use and the error says why.
func (a *Authorizer) Reload() error {
	st := &state{}
	var err error
	if a.cfg.PasswordFile != "" {
		if st.passwords, err = LoadPasswords(a.cfg.PasswordFile); err != nil {
			return err
		}
	}
	if a.cfg.ACLFile != "" {
		if st.acl, err = LoadACL(a.cfg.ACLFile); err != nil {
			return err
		}
	}
	a.state.Store(st)
	return nil
}

// ReloadOnSIGHUP reloads the files whenever the process gets SIGHUP, until ctx
// ends; failures are logged and leave the previous files in use.
func (a *Authorizer) ReloadOnSIGHUP(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if err := a.Reload(); err != nil {
					log.Error("auth: reload failed; previous files stay in use", "err", err)
				} else {
					log.Info("auth: password and ACL files reloaded")
				}
			}
		}
	}()
}

// Authenticate checks a CONNECT's user name and password (broker.Hooks.Authenticate).
func (a *Authorizer) Authenticate(_ context.Context, c broker.ClientInfo, user string, password []byte) error {
	st := a.state.Load()
	if user == "" {
		if !a.cfg.AllowAnonymous {
			return fmt.Errorf("%w: anonymous clients are not allowed", broker.ErrNotAuthorized)
		}
		return nil
	}
	if st.passwords != nil && !st.passwords.Check(user, password) {
		return ErrBadCredentials
	}
	return nil
}

// ErrDenied is returned by the authorization hooks for what the ACL does not
// allow.
var ErrDenied = errors.New("auth: denied by the ACL")

// AuthorizePublish checks a PUBLISH or will topic (broker.Hooks.AuthorizePublish).
func (a *Authorizer) AuthorizePublish(_ context.Context, c broker.ClientInfo, topic string, _ byte, _ bool) error {
	if acl := a.state.Load().acl; acl != nil && !acl.CanWrite(c.Username, c.ID, topic) {
		return ErrDenied
	}
	return nil
}

// AuthorizeSubscribe checks a SUBSCRIBE filter (broker.Hooks.AuthorizeSubscribe).
func (a *Authorizer) AuthorizeSubscribe(_ context.Context, c broker.ClientInfo, filter string, qos byte) (byte, error) {
	if acl := a.state.Load().acl; acl != nil && !acl.CanRead(c.Username, c.ID, filter) {
		return 0, ErrDenied
	}
	return qos, nil
}

// Hooks returns the broker hooks that apply the Authorizer.
func (a *Authorizer) Hooks() broker.Hooks {
	return broker.Hooks{
		Authenticate:       a.Authenticate,
		AuthorizePublish:   a.AuthorizePublish,
		AuthorizeSubscribe: a.AuthorizeSubscribe,
	}
}
