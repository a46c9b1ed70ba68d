package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/auditlog"
)

var _ auditlog.ErasureState = (*Store)(nil)

// RecordErased records erased identifiers (auditlog.ErasureState).
func (s *Store) RecordErased(ctx context.Context, values []auditlog.ErasedValue) error {
	if len(values) == 0 {
		return nil
	}
	digests := make([][]byte, len(values))
	repl := make([]string, len(values))
	for i, v := range values {
		digests[i], repl[i] = v.Digest, v.Replacement
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO herald_erasures (digest, replacement)
		SELECT * FROM unnest($1::bytea[], $2::text[]) ON CONFLICT (digest) DO NOTHING`, digests, repl); err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	return nil
}

// Erased returns those of digests that are recorded, with their
// replacements (auditlog.ErasureState).
func (s *Store) Erased(ctx context.Context, digests [][]byte) (map[string]string, error) {
	if len(digests) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT digest, replacement FROM herald_erasures WHERE digest = ANY($1::bytea[])`, digests)
	if err != nil {
		return nil, fmt.Errorf("erased: %w", err)
	}
	out := map[string]string{}
	var d []byte
	var r string
	if _, err := pgx.ForEachRow(rows, []any{&d, &r}, func() error {
		out[string(d)] = r
		return nil
	}); err != nil {
		return nil, fmt.Errorf("erased: %w", err)
	}
	return out, nil
}
