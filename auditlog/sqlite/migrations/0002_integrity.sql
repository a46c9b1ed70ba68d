-- The verifiable log (docs/integrity.md). Each entry is a leaf of a
-- Merkle tree: leaf_hash is computed when it is appended; its leaf index
-- is given by the integrator, 0, 1, 2, … in seq order, in table leaves. seed derives the salt
-- of every scalar of the entry's content; after an erasure it is NULL and
-- salts (JSON {pointer: base64 salt}) and erased (JSON {pointer: {kind,
-- hash}}) hold what recomputes the leaf. Retention sets content_hash and
-- deletes headers, payload, seed, salts and erased. Entries appended
-- before this version get their seed and leaf hash from the integrator.
ALTER TABLE entries ADD COLUMN leaf_hash    BLOB;
ALTER TABLE entries ADD COLUMN seed         BLOB;
ALTER TABLE entries ADD COLUMN salts        TEXT;
ALTER TABLE entries ADD COLUMN erased       TEXT;
ALTER TABLE entries ADD COLUMN content_hash BLOB;

-- Each integrated entry's leaf index, by seq. A table of its own rather
-- than a column of entries: the integrator appends two integers per entry
-- here, where setting a column would write every entry's row a second
-- time (and on PostgreSQL, a new version of the row in every index).
CREATE TABLE leaves (
    seq        INTEGER PRIMARY KEY,
    leaf_index INTEGER NOT NULL
);

-- The tree's stored hashes (tlog's layout: index StoredHashIndex(level,
-- n)), a cache that proofs are read from; verify never trusts it. Kept in
-- tiles of 32 consecutive hashes (1 KiB, under PostgreSQL's TOAST
-- threshold): tile t holds the hashes of indexes 32t to 32t+31, the last
-- tile as far as the tree goes. Two rows per entry became one per 16.
CREATE TABLE tree_hashes (
    tile   INTEGER PRIMARY KEY,
    hashes BLOB NOT NULL
);

-- Every checkpoint the log issued, one per integration: the signed note.
CREATE TABLE checkpoints (
    size       INTEGER PRIMARY KEY,
    note       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- How far the integrator got: the tree's size and the seq of its last
-- leaf (appends commit in seq order, so every entry above it is new).
CREATE TABLE tree_state (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    size     INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
INSERT INTO tree_state (one, size, last_seq) VALUES (1, 0, 0);
