-- mqttstore PostgreSQL schema, version 2: shared stores (several brokers on one
-- schema). See owner.go and ARCHITECTURE.md, "Shared stores".

-- Ownership epochs: every claim of any session takes the next value, so an epoch
-- is never reused, not even after an ownership row is deleted (a release) and
-- created again.
CREATE SEQUENCE mqtt_owner_epoch AS bigint;

-- One row per registered node (broker). expires is the end of its lease as Unix
-- nanoseconds of the clock of the provider that renewed it.
CREATE TABLE mqtt_nodes (
    node    bytea  PRIMARY KEY,
    expires bigint NOT NULL
);

-- The owner of each claimed session. Not a foreign key of mqtt_sessions: a broker
-- claims a client identifier before it creates the session, and the claim outlives
-- a Delete of the session (a clean start is Delete then Create under one claim).
-- Fenced writes lock the row FOR SHARE in their transaction, so a claim (an UPDATE
-- of the row) waits for them to commit and a fenced write that follows a claim sees
-- the new epoch.
CREATE TABLE mqtt_owners (
    h     bytea  PRIMARY KEY, -- sha256(id)
    id    bytea  NOT NULL,
    node  bytea  NOT NULL,    -- not a foreign key of mqtt_nodes: a node that left keeps its rows, claimable
    epoch bigint NOT NULL
);
CREATE INDEX mqtt_owners_node ON mqtt_owners (node, h);
