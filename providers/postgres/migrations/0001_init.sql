-- mqttstore PostgreSQL schema, version 1.
--
-- Session ids, filters and topics are arbitrary bytes of any length, while a btree
-- key must stay under about 2.7 kB; so rows are keyed by the SHA-256 of those bytes
-- (h, fh, th), computed by the driver, and the bytes themselves are kept beside them.

CREATE TABLE mqtt_system (
    id   smallint PRIMARY KEY CHECK (id = 1),
    info bytea    NOT NULL -- persistence.EncodeSystemInfo
);

-- Store-wide packet sequence numbers: never reused (sequences are not rolled back).
CREATE SEQUENCE mqtt_packet_seq AS bigint;

CREATE TABLE mqtt_sessions (
    h        bytea PRIMARY KEY, -- sha256(id)
    id       bytea NOT NULL,
    base     bytea NOT NULL,    -- persistence.EncodeSessionBase
    state    bytea,             -- persistence.EncodeState, NULL when none
    expiry   bytea,             -- persistence.EncodeExpiry, NULL when none
    due_sec  bigint,            -- SessionExpiry.Next() as Unix seconds and nanoseconds,
    due_nsec integer            -- so ExpiredForEach reads only the sessions that are due
);
CREATE INDEX mqtt_sessions_due ON mqtt_sessions (due_sec, due_nsec, h) WHERE due_sec IS NOT NULL;

CREATE TABLE mqtt_subscriptions (
    h    bytea NOT NULL REFERENCES mqtt_sessions (h) ON DELETE CASCADE,
    fh   bytea NOT NULL, -- sha256(filter)
    blob bytea NOT NULL, -- persistence.EncodeSubscription (holds the filter)
    PRIMARY KEY (h, fh)
);

-- One row per packet; the primary key is the FIFO order of each (session, class)
-- queue, so iteration, acknowledgement and counting are index range scans.
CREATE TABLE mqtt_packets (
    h     bytea    NOT NULL REFERENCES mqtt_sessions (h) ON DELETE CASCADE,
    class smallint NOT NULL CHECK (class BETWEEN 1 AND 4),
    seq   bigint   NOT NULL,
    blob  bytea    NOT NULL, -- persistence.EncodePacket (holds the expiry deadline)
    PRIMARY KEY (h, class, seq)
);

CREATE TABLE mqtt_retained (
    th    bytea PRIMARY KEY, -- sha256(topic)
    topic bytea NOT NULL,
    blob  bytea NOT NULL     -- persistence.EncodePacket
);
-- Wildcard loads scan the range of topics starting with the filter's literal prefix;
-- the first 128 bytes keep the key small whatever the topic's length.
CREATE INDEX mqtt_retained_prefix ON mqtt_retained ((substring(topic FROM 1 FOR 128)));
