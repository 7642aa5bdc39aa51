package kv

import (
	"errors"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// pageSize is the number of items an iteration reads per read transaction; callbacks
// run between pages, with no transaction open.
const pageSize = 256

// pager is the loop every iteration of the layer runs (sessions, expired sessions,
// packets, retained messages): read a page of items in one read transaction, then
// hand them to visit one by one with no transaction open. When a write commits while
// a page is being delivered, the rest of the page is dropped and read again from the
// item about to be delivered, so that visit never gets an item older than a write
// that committed before it, the callback's own writes included (a deleted item is
// not delivered, a replaced one is delivered in its new version).
//
// C is the iteration's cursor: a key, or a sequence number.
type pager[T, C any] struct {
	// what names the iteration in errors.
	what string
	// read reads the page that starts at cursor from. next is the cursor after it,
	// and more whether items may be left there.
	read func(tx Tx, from C) (page []T, next C, more bool, err error)
	// at returns the cursor of it, where a page read again starts.
	at func(it T) C
	// visit delivers it; its error ends the iteration.
	visit func(it T) error
	// paged, when not nil, is called after each page has been delivered, whole or
	// up to a re-read, before the next one is read.
	paged func() error
	// seen is the commit count read just before the current page's transaction
	// began: a write transaction running when the count has not moved since sees
	// exactly what the page saw (see writer.unchangedSince).
	seen uint64
}

// run iterates from cursor from until a page comes back without more, or visit or
// paged fails.
func (p *pager[T, C]) run(s *Store, from C) error {
	for {
		var (
			page []T
			next C
			more bool
		)
		p.seen = s.commits.Load()
		err := s.view(p.what, func(tx Tx) error {
			var err error
			page, next, more, err = p.read(tx, from)
			return err
		})
		if err != nil {
			return err
		}
		reread := false
		for i, it := range page {
			if i > 0 && s.commits.Load() != p.seen {
				from, reread = p.at(it), true
				break
			}
			if err := p.visit(it); err != nil {
				return err
			}
		}
		if p.paged != nil {
			if err := p.paged(); err != nil {
				return err
			}
		}
		switch {
		case reread:
		case !more:
			return nil
		default:
			from = next
		}
	}
}

// keyCursor is the cursor of an iteration over keys: the cursor after a full page
// of items whose key key returns is just after the last one's key.
func keyCursor[T any](page []T, key func(T) []byte) (next []byte, more bool) {
	if len(page) == 0 {
		return nil, false
	}
	return after(key(page[len(page)-1])), len(page) == pageSize
}

// after returns the smallest key greater than k.
func after(k []byte) []byte { return append(append([]byte(nil), k...), 0) }

// maxReported bounds the broken entries an iteration lists in its error.
const maxReported = 16

// brokenList collects the broken entries an iteration skipped: the iteration goes
// on with the others and returns them all (each matching driver.ErrBrokenEntry)
// at the end.
type brokenList struct {
	errs []error
	n    int
}

func (b *brokenList) add(err error) {
	b.n++
	if len(b.errs) < maxReported {
		b.errs = append(b.errs, err)
	}
}

func (b *brokenList) err() error {
	if b.n == 0 {
		return nil
	}
	if b.n > len(b.errs) {
		b.errs = append(b.errs, fmt.Errorf("%w: and %d more", driver.ErrBrokenEntry, b.n-len(b.errs)))
	}
	return errors.Join(b.errs...)
}
