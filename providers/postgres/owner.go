package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Shared stores (driver.Sharer): node leases in mqtt_nodes, session owners in
// mqtt_owners, epochs from the mqtt_owner_epoch sequence (migrations/0002_shared.sql).
// A fenced Apply carries OpFence operations, which become fenceStmt: a
// SELECT ... FOR SHARE of the owner row with the expected epoch, in the same
// transaction as the Apply's writes (see apply.go). A claim updates that row, so it
// waits for the fenced transactions that hold it and every fenced write that starts
// after the claim committed finds the new epoch and writes nothing.

var _ driver.Sharer = (*conn)(nil)

// nanos is t as the bigint the lease columns hold.
func nanos(t time.Time) int64 { return t.UnixNano() }

// fenceStmt checks, holding the owner row of session id until the transaction ends,
// that the session is owned under epoch; no row makes the Apply fail with
// ErrFenced. FOR SHARE conflicts with the UPDATE of a claim (FOR KEY SHARE would
// not), and in READ COMMITTED a row updated by a claim that committed meanwhile is
// re-read at its latest version, whose epoch then does not match.
func fenceStmt(id string, epoch uint64) *stmt {
	var one int32
	return &stmt{
		what:  "fence",
		sql:   `SELECT 1 FROM mqtt_owners WHERE h = $1 AND epoch = $2 FOR SHARE`,
		args:  []any{hashOf(id), seqArg(epoch)},
		dest:  []any{&one},
		noRow: func() error { return fenced(id, epoch) },
	}
}

func fenced(id string, epoch uint64) error {
	return fmt.Errorf("postgres: session %s: ownership epoch %d is no longer current: %w", show(id), epoch, driver.ErrFenced)
}

// RenewLease upserts node's lease.
func (c *conn) RenewLease(ctx context.Context, node string, ttl time.Duration) (driver.Lease, error) {
	if err := c.beginWrite(); err != nil {
		return driver.Lease{}, err
	}
	defer c.endWrite()
	exp := c.env.Clock.Now().Add(ttl)
	_, err := c.pool.Exec(ctx, c.q(`INSERT INTO mqtt_nodes (node, expires) VALUES ($1, $2)
		ON CONFLICT (node) DO UPDATE SET expires = EXCLUDED.expires`), []byte(node), nanos(exp))
	if err != nil {
		return driver.Lease{}, c.wrap(ctx, "renew lease", err)
	}
	return driver.Lease{Node: node, Expires: exp}, nil
}

// Leave deletes node's lease.
func (c *conn) Leave(ctx context.Context, node string) error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	_, err := c.pool.Exec(ctx, c.q(`DELETE FROM mqtt_nodes WHERE node = $1`), []byte(node))
	return c.wrap(ctx, "leave", err)
}

// LeasesForEach reads every lease (nodes are few), then calls fn with no
// connection held.
func (c *conn) LeasesForEach(ctx context.Context, fn func(driver.Lease) error) error {
	rows, err := c.pool.Query(ctx, c.q(`SELECT node, expires FROM mqtt_nodes`))
	if err != nil {
		return c.wrap(ctx, "read leases", err)
	}
	ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (driver.Lease, error) {
		var node []byte
		var exp int64
		err := r.Scan(&node, &exp)
		return driver.Lease{Node: string(node), Expires: time.Unix(0, exp)}, err
	})
	if err != nil {
		return c.wrap(ctx, "read leases", err)
	}
	for _, l := range ls {
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// claimSQL claims session $1 (id $2) for node $3 in one statement, provided node's
// lease is live at $5 (Unix nanoseconds). The INSERT of a new owner row, or the
// UPDATE of the existing one (ON CONFLICT), takes the next epoch (the UPDATE takes
// it once it holds the row, so a session's epochs increase in commit order); the UPDATE
// happens only with takeover ($4), when the owner is the claimer itself, or when
// the owner holds no live lease. ON CONFLICT locks the row before it evaluates its
// WHERE, and re-evaluates it against a version a concurrent claim committed, so of
// two concurrent claims only one can find the session claimable. The statement
// returns whether the claimer's lease is live and the new epoch (NULL when the
// session was not claimable).
const claimSQL = `WITH me AS (SELECT node FROM mqtt_nodes WHERE node = $3 AND expires > $5),
	c AS (INSERT INTO mqtt_owners AS o (h, id, node, epoch)
		SELECT $1, $2, me.node, nextval('mqtt_owner_epoch') FROM me
		ON CONFLICT (h) DO UPDATE SET node = EXCLUDED.node, epoch = nextval('mqtt_owner_epoch')
		WHERE $4::boolean OR o.node = EXCLUDED.node
			OR NOT EXISTS (SELECT 1 FROM mqtt_nodes n WHERE n.node = o.node AND n.expires > $5)
		RETURNING o.epoch)
	SELECT EXISTS (SELECT 1 FROM me), (SELECT epoch FROM c)`

// Claim runs claimSQL and explains a refusal.
func (c *conn) Claim(ctx context.Context, id, node string, takeover bool) (driver.Ownership, error) {
	if err := c.beginWrite(); err != nil {
		return driver.Ownership{}, err
	}
	defer c.endWrite()
	now := c.env.Clock.Now()
	var live bool
	var epoch *int64
	err := c.pool.QueryRow(ctx, c.q(claimSQL), hashOf(id), []byte(id), []byte(node), takeover, nanos(now)).Scan(&live, &epoch)
	if err != nil {
		return driver.Ownership{}, c.wrap(ctx, "claim", err)
	}
	switch {
	case !live:
		return driver.Ownership{}, fmt.Errorf("postgres: claim of session %s: node %s: %w (renew it first)", show(id), show(node), driver.ErrLeaseExpired)
	case epoch == nil:
		// Who owns it, for the message only: it may have changed since.
		owner := "another node"
		if o, err := c.Owner(ctx, id); err == nil {
			owner = "node " + show(o.Node)
		}
		return driver.Ownership{}, fmt.Errorf("postgres: claim of session %s by node %s: %s holds it with a live lease: %w",
			show(id), show(node), owner, driver.ErrOwned)
	}
	return driver.Ownership{ID: id, Node: node, Epoch: uint64(*epoch)}, nil
}

// Release deletes the owner row if it is still o.
func (c *conn) Release(ctx context.Context, o driver.Ownership) error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	tag, err := c.pool.Exec(ctx, c.q(`DELETE FROM mqtt_owners WHERE h = $1 AND epoch = $2 AND node = $3`),
		hashOf(o.ID), seqArg(o.Epoch), []byte(o.Node))
	if err != nil {
		return c.wrap(ctx, "release", err)
	}
	if tag.RowsAffected() == 0 {
		return fenced(o.ID, o.Epoch)
	}
	return nil
}

// Owner reads the owner row of session id.
func (c *conn) Owner(ctx context.Context, id string) (driver.Ownership, error) {
	var node []byte
	var epoch int64
	err := c.pool.QueryRow(ctx, c.q(`SELECT node, epoch FROM mqtt_owners WHERE h = $1`), hashOf(id)).Scan(&node, &epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return driver.Ownership{}, fmt.Errorf("postgres: session %s has no owner: %w", show(id), driver.ErrNotFound)
	}
	if err != nil {
		return driver.Ownership{}, c.wrap(ctx, "owner", err)
	}
	return driver.Ownership{ID: id, Node: string(node), Epoch: uint64(epoch)}, nil
}

// OwnedForEach reads node's owner rows a page at a time by key (the index on
// (node, h)) and calls fn with no connection held.
func (c *conn) OwnedForEach(ctx context.Context, node string, fn func(driver.Ownership) error) error {
	after := []byte{}
	for {
		rows, err := c.pool.Query(ctx, c.q(`SELECT h, id, epoch FROM mqtt_owners
			WHERE node = $1 AND h > $2 ORDER BY h LIMIT $3`), []byte(node), after, pageSize)
		if err != nil {
			return c.wrap(ctx, "owned sessions", err)
		}
		type row struct {
			h, id []byte
			epoch int64
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.h, &x.id, &x.epoch)
			return x, err
		})
		if err != nil {
			return c.wrap(ctx, "owned sessions", err)
		}
		for _, x := range page {
			if err := fn(driver.Ownership{ID: string(x.id), Node: node, Epoch: uint64(x.epoch)}); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		after = page[len(page)-1].h
	}
}
