-- Entries, one row per stored event. seq is the insertion order; Append
-- takes the entry_count row lock first, so seqs also commit in order.
-- created_at is the zero time (0001-01-01) for an event without one.
CREATE TABLE entries (
    seq          bigserial   PRIMARY KEY,
    id           text        NOT NULL UNIQUE,
    name         text        NOT NULL,
    service_name text        NOT NULL,
    created_at   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    "user"       text        NOT NULL,
    tenant       text        NOT NULL,
    headers      jsonb,
    payload      jsonb       NOT NULL,
    unknown      boolean     NOT NULL
);

-- Every B-tree ends with (created_at, seq): each filter reads its page in
-- order and keyset pages seek straight to their cursor.
CREATE INDEX entries_created ON entries (created_at, seq);
CREATE INDEX entries_name    ON entries (name, created_at, seq);
CREATE INDEX entries_service ON entries (service_name, created_at, seq);
CREATE INDEX entries_tenant  ON entries (tenant, created_at, seq);
CREATE INDEX entries_user    ON entries ("user", created_at, seq);

-- Payload filters are containment (payload @> '{"key":"value"}'), which
-- this index serves for any key.
CREATE INDEX entries_payload ON entries USING gin (payload jsonb_path_ops);

-- The number of entries, so that an unfiltered admin query does not count
-- the whole table. Entries are never deleted. Append locks this row first:
-- appends take turns, and seq order is commit order.
CREATE TABLE entry_count (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    n   bigint  NOT NULL
);
INSERT INTO entry_count (one, n) VALUES (true, 0);
