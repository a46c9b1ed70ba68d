-- The erasure state (auditlog.ErasureState): one row per identifier of an
-- erased user, keyed by HMAC-SHA256 under the server's erasure key, never
-- the value, with what replaces it (XXXXXXXXXX or the user's pseudonym).
CREATE TABLE herald_erasures (
    digest      bytea       PRIMARY KEY,
    replacement text        NOT NULL,
    erased_at   timestamptz NOT NULL DEFAULT now()
);

-- Earlier versions kept erased users as plain SHA-256 digests, which a
-- dictionary of e-mail addresses confirms: gone.
DROP TABLE IF EXISTS herald_forgotten;
