-- The erasure state (auditlog.ErasureState): one row per identifier of an
-- erased user, keyed by HMAC-SHA256 under the server's erasure key, never
-- the value, with what replaces it (XXXXXXXXXX or the user's pseudonym).
CREATE TABLE herald_erasures (
    digest      BLOB    PRIMARY KEY,
    replacement TEXT    NOT NULL,
    erased_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Earlier versions kept erased users as plain SHA-256 digests, which a
-- dictionary of e-mail addresses confirms: gone.
DROP TABLE IF EXISTS herald_forgotten;

-- A deleted token of the payload index (a rewritten entry's old terms) is
-- removed from its segment at once, not only marked deleted.
INSERT INTO entry_terms (entry_terms, rank) VALUES ('secure-delete', 1);
