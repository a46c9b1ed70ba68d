package storetest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
)

// Raw is SQL run straight on a store's database, as someone who can reach
// the file or the database role would. Statements use ? placeholders.
type Raw interface {
	Exec(ctx context.Context, query string, args ...any) error
	// Query returns every row, each as its columns' values.
	Query(ctx context.Context, query string, args ...any) ([][]any, error)
	// Text is the expression reading a JSON column as text.
	Text(col string) string
	// Millis is the expression reading a time column as milliseconds
	// since the epoch, and AddMillis the one of col plus ? milliseconds.
	Millis(col string) string
	AddMillis(col string) string
}

// TamperHarness gives the tamper suite a store and raw access to it.
type TamperHarness struct {
	// Open returns a new, empty store.
	Open func(t testing.TB) auditlog.Store
	// Copy returns a new store holding a copy of s's database, and raw
	// access to the copy.
	Copy func(t testing.TB, s auditlog.Store) (auditlog.Store, Raw)
	// Raw returns raw access to s's own database.
	Raw func(t testing.TB, s auditlog.Store) Raw
}

// tamperLog fills s with n entries as herald would: integrated in several
// checkpoints, one user's entries erased, the oldest tenth pruned by
// retention, and a few entries not yet integrated.
func tamperLog(t testing.TB, s auditlog.Store, signer *auditlog.Signer, n int) {
	t.Helper()
	d := NewDataset(17, n)
	for lo := 0; lo < n; lo += 500 {
		mustAppend(t, s, d.Entries(lo, min(500, n-lo))...)
		if lo/500%3 == 2 {
			mustIntegrate(t, s, signer)
		}
	}
	mustIntegrate(t, s, signer)
	ad := anonymiseData()
	for i := range ad {
		ad[i].ReceivedAt = time.Now() // not pruned below
	}
	mustAppend(t, s, ad...)
	if _, err := auditlog.Anonymise(ctx(t), s, deleted); err != nil {
		t.Fatal(err)
	}
	cut := d.Entries(n/10, 1)[0].ReceivedAt
	record := func(ctx context.Context, ev *event.Event) error {
		e, err := auditlog.EntryFromEvent(ev, time.Now(), nil)
		if err == nil {
			_, err = s.Append(ctx, []auditlog.Entry{e})
		}
		return err
	}
	if _, err := auditlog.Retain(ctx(t), s, cut, time.Hour, record); err != nil {
		t.Fatal(err)
	}
	mustIntegrate(t, s, signer)
	mustAppend(t, s, entry("pending-1", "x.y", at(1), map[string]any{"user": "p"}), entry("pending-2", "x.y", at(2), nil))
}

func mustVerify(t testing.TB, s auditlog.Store, v note.Verifier) *auditlog.Report {
	t.Helper()
	r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return r
}

// row reads one entry's seq, id and leaf index, by leaf index.
func leafRow(t testing.TB, raw Raw, leaf int64) (seq int64, id string) {
	t.Helper()
	rows, err := raw.Query(ctx(t), `SELECT e.seq, e.id FROM entries e JOIN leaves l ON l.seq = e.seq WHERE l.leaf_index = ?`, leaf)
	if err != nil || len(rows) != 1 {
		t.Fatalf("entry at leaf %d: %v (%d rows)", leaf, err, len(rows))
	}
	return asInt(rows[0][0]), asString(rows[0][1])
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	}
	panic(fmt.Sprintf("not an integer: %T", v))
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	panic(fmt.Sprintf("not a string: %T", v))
}

func mustExec(t testing.TB, raw Raw, query string, args ...any) {
	t.Helper()
	if err := raw.Exec(ctx(t), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// RunTamper is the tamper-detection suite: each way of editing a store of
// 10,000 entries that herald verify must catch, on a copy of one log; and
// 200 random single-cell edits of the columns that hold entry content.
func RunTamper(t *testing.T, h TamperHarness) {
	signer, v := NewSigner(t, "tamper")
	base := h.Open(t)
	t.Cleanup(func() { base.Close() })
	tamperLog(t, base, signer, 10000)
	if r := mustVerify(t, base, v); r.Failure != nil || r.Integrated < 10000 || r.Pruned == 0 || r.Erased == 0 || r.Pending != 2 {
		t.Fatalf("the untouched log: %+v, failure %v", r, r.Failure)
	}
	const mid = 5000 // a leaf in the middle, neither pruned nor erased
	tests := []struct {
		name   string
		tamper func(t *testing.T, raw Raw) (id string, leaf, checkpoint int64)
		want   string
	}{
		{"payload value edited", func(t *testing.T, raw Raw) (string, int64, int64) {
			seq, id := leafRow(t, raw, mid)
			rows, _ := raw.Query(ctx(t), `SELECT `+raw.Text("payload")+` FROM entries WHERE seq = ?`, seq)
			var p map[string]any
			json.Unmarshal([]byte(asString(rows[0][0])), &p)
			p["flowId"] = "tampered"
			b, _ := json.Marshal(p)
			mustExec(t, raw, `UPDATE entries SET payload = ? WHERE seq = ?`, string(b), seq)
			return id, mid, -2
		}, auditlog.ContentChanged},
		{"an erased field's replacement edited", func(t *testing.T, raw Raw) (string, int64, int64) {
			// The leaf covers the erased value's commitment, not the text
			// shown in its place: verify checks that text is what an
			// erasure writes.
			rows, err := raw.Query(ctx(t), `SELECT seq, id, erased, `+raw.Text("payload")+` FROM entries WHERE erased IS NOT NULL ORDER BY seq`)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				var erased map[string]json.RawMessage
				json.Unmarshal([]byte(asString(row[2])), &erased)
				var p map[string]any
				json.Unmarshal([]byte(asString(row[3])), &p)
				for ptr := range erased {
					key, ok := strings.CutPrefix(ptr, "/payload/")
					if v, isString := p[key].(string); ok && isString && !strings.Contains(key, "/") {
						p[key] = v + "x"
						b, _ := json.Marshal(p)
						mustExec(t, raw, `UPDATE entries SET payload = ? WHERE seq = ?`, string(b), asInt(row[0]))
						var leaf int64 = -2
						if l, err := raw.Query(ctx(t), `SELECT leaf_index FROM leaves WHERE seq = ?`, asInt(row[0])); err == nil && len(l) == 1 {
							leaf = asInt(l[0][0])
						}
						return asString(row[1]), leaf, -2
					}
				}
			}
			t.Fatal("no erased top-level payload field in the log")
			return "", -2, -2
		}, auditlog.ContentChanged},
		{"createdAt edited", func(t *testing.T, raw Raw) (string, int64, int64) {
			seq, id := leafRow(t, raw, mid)
			mustExec(t, raw, `UPDATE entries SET created_at = `+raw.AddMillis("created_at")+` WHERE seq = ?`, 1, seq)
			return id, mid, -2
		}, auditlog.ContentChanged},
		{"name edited", func(t *testing.T, raw Raw) (string, int64, int64) {
			seq, id := leafRow(t, raw, mid)
			mustExec(t, raw, `UPDATE entries SET name = 'iam.user.modified' WHERE seq = ?`, seq)
			return id, mid, -2
		}, auditlog.ContentChanged},
		{"entry deleted", func(t *testing.T, raw Raw) (string, int64, int64) {
			seq, _ := leafRow(t, raw, mid)
			_, next := leafRow(t, raw, mid+1)
			mustExec(t, raw, `DELETE FROM entries WHERE seq = ?`, seq)
			return next, mid + 1, -2
		}, auditlog.EntryMissing},
		{"entry deleted and the later ones renumbered", func(t *testing.T, raw Raw) (string, int64, int64) {
			seq, _ := leafRow(t, raw, mid)
			_, next := leafRow(t, raw, mid+1)
			mustExec(t, raw, `DELETE FROM entries WHERE seq = ?`, seq)
			mustExec(t, raw, `DELETE FROM leaves WHERE seq = ?`, seq)
			mustExec(t, raw, `UPDATE leaves SET leaf_index = leaf_index - 1 WHERE leaf_index > ?`, mid)
			return next, mid, -2
		}, auditlog.EntryMissing},
		{"two entries' order swapped", func(t *testing.T, raw Raw) (string, int64, int64) {
			a, _ := leafRow(t, raw, mid)
			b, _ := leafRow(t, raw, mid+7)
			mustExec(t, raw, `UPDATE leaves SET leaf_index = ? WHERE seq = ?`, mid+7, a)
			mustExec(t, raw, `UPDATE leaves SET leaf_index = ? WHERE seq = ?`, mid, b)
			return "", mid + 7, -2
		}, auditlog.OrderChanged},
		{"entry inserted", func(t *testing.T, raw Raw) (string, int64, int64) {
			// A well-formed entry, sealed, placed at the next leaf: no
			// signed checkpoint covers it.
			rows, err := raw.Query(ctx(t), `SELECT (SELECT max(leaf_index) + 1 FROM leaves), max(seq) + 1 FROM entries`)
			if err != nil || len(rows) != 1 {
				t.Fatalf("the next leaf and seq: %v", err)
			}
			leaf, seq := asInt(rows[0][0]), asInt(rows[0][1])
			e := entry("inserted", "iam.user.created", at(5), map[string]any{"id": "ghost"})
			if err := auditlog.Seal(&e); err != nil {
				t.Fatal(err)
			}
			mustExec(t, raw, `UPDATE entries SET seq = seq + 10 WHERE seq NOT IN (SELECT seq FROM leaves)`)
			mustExec(t, raw, `INSERT INTO entries (seq, id, name, service_name, created_at, received_at, "user", tenant, payload, unknown, seed, leaf_hash) `+
				`VALUES (?, ?, ?, ?, (SELECT min(created_at) FROM entries), (SELECT min(received_at) FROM entries), '', '', ?, false, ?, ?)`,
				seq, e.ID, e.Name, e.ServiceName, string(e.Payload), e.Seed, e.LeafHash)
			mustExec(t, raw, `INSERT INTO leaves (seq, leaf_index) VALUES (?, ?)`, seq, leaf)
			return "", leaf, -2
		}, auditlog.ExtraEntry},
		{"a checkpoint's root edited", func(t *testing.T, raw Raw) (string, int64, int64) {
			rows, _ := raw.Query(ctx(t), `SELECT size, note FROM checkpoints WHERE size > 0 ORDER BY size LIMIT 1 OFFSET 3`)
			size, msg := asInt(rows[0][0]), asString(rows[0][1])
			lines := strings.Split(msg, "\n")
			root, _ := base64.StdEncoding.DecodeString(lines[2])
			root[0] ^= 1
			lines[2] = base64.StdEncoding.EncodeToString(root)
			mustExec(t, raw, `UPDATE checkpoints SET note = ? WHERE size = ?`, strings.Join(lines, "\n"), size)
			return "", -2, size
		}, auditlog.BadSignature},
		{"a checkpoint deleted", func(t *testing.T, raw Raw) (string, int64, int64) {
			rows, _ := raw.Query(ctx(t), `SELECT size FROM checkpoints WHERE size > 0 ORDER BY size LIMIT 1 OFFSET 2`)
			size := asInt(rows[0][0])
			mustExec(t, raw, `DELETE FROM checkpoints WHERE size = ?`, size)
			return "", -2, size
		}, auditlog.CheckpointMissing},
		{"tree rebuilt from a truncated log and re-signed with another key", func(t *testing.T, raw Raw) (string, int64, int64) {
			mustExec(t, raw, `DELETE FROM entries WHERE seq IN (SELECT seq FROM leaves WHERE leaf_index >= ?) OR seq NOT IN (SELECT seq FROM leaves)`, 8000)
			mustExec(t, raw, `DELETE FROM leaves`)
			mustExec(t, raw, `DELETE FROM tree_hashes`)
			mustExec(t, raw, `DELETE FROM checkpoints`)
			mustExec(t, raw, `UPDATE tree_state SET size = 0, last_seq = 0`)
			return "", -2, -2
		}, auditlog.BadSignature},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			s, raw := h.Copy(t, base)
			t.Cleanup(func() { s.Close() })
			id, leaf, cp := tt.tamper(t, raw)
			if tt.want == auditlog.BadSignature && cp == -2 {
				other, _ := NewSigner(t, "tamper")
				mustIntegrate(t, s, other)
			}
			r := mustVerify(t, s, v)
			f := r.Failure
			if f == nil {
				t.Fatalf("verify passed a log with %s", tt.name)
			}
			t.Logf("verify: %v", f)
			if f.What != tt.want || id != "" && f.EntryID != id || leaf != -2 && f.LeafIndex != leaf || cp != -2 && f.Checkpoint != cp {
				t.Errorf("verify found %q (entry %q, leaf %d, checkpoint %d), want %q (entry %q, leaf %d, checkpoint %d; -2: any)",
					f.What, f.EntryID, f.LeafIndex, f.Checkpoint, tt.want, id, leaf, cp)
			}
		})
	}
	t.Run("200_random_single-cell_edits", func(t *testing.T) { testRandomEdits(t, h) })
}

// contentColumns are the columns of the tables that hold entry content,
// each edited by the random test. Left out, and so able to change
// unnoticed: entries.seq (the row's key, which leaves refers to: an edit
// is caught as a lost leaf, except of an entry not yet integrated, whose
// seq is only its place in the queue),
// entries.unknown (whether the catalogue knew the name when the entry
// arrived, not part of the event), entry_count, the payload index
// (entry_terms on SQLite), tree_state (the integrator's progress),
// checkpoints.created_at, and the user and tenant of a pruned entry,
// whose payload they mirror is gone.
var contentColumns = []struct {
	table, col string
}{
	{"entries", "id"}, {"entries", "name"}, {"entries", "service_name"}, {"entries", "created_at"}, {"entries", "received_at"},
	{"entries", `"user"`}, {"entries", "tenant"}, {"entries", "headers"}, {"entries", "payload"}, {"entries", "payload"}, {"entries", "payload"},
	{"leaves", "leaf_index"}, {"leaves", "seq"}, {"entries", "leaf_hash"}, {"entries", "seed"}, {"entries", "salts"}, {"entries", "erased"}, {"entries", "content_hash"},
	{"tree_hashes", "hashes"}, {"tree_hashes", "tile"}, {"checkpoints", "note"}, {"checkpoints", "size"},
}

func testRandomEdits(t *testing.T, h TamperHarness) {
	signer, v := NewSigner(t, "random")
	s := h.Open(t)
	t.Cleanup(func() { s.Close() })
	tamperLog(t, s, signer, 600)
	raw := h.Raw(t, s)
	if r := mustVerify(t, s, v); r.Failure != nil {
		t.Fatalf("the untouched log: %v", r.Failure)
	}
	rng := rand.New(rand.NewPCG(8, 13))
	for i := range 200 {
		c := contentColumns[rng.IntN(len(contentColumns))]
		key := map[string]string{"entries": "seq", "leaves": "seq", "tree_hashes": "tile", "checkpoints": "size"}[c.table]
		read := c.col
		switch c.col {
		case "headers", "payload":
			read = raw.Text(c.col)
		case "created_at", "received_at":
			read = raw.Millis(c.col)
		}
		where := ""
		if c.table == "entries" && (c.col == `"user"` || c.col == "tenant") {
			where = ` WHERE content_hash IS NULL`
		}
		if c.table == "entries" && c.col == "content_hash" && rng.IntN(2) == 0 {
			where = ` WHERE content_hash IS NOT NULL`
		}
		if c.table == "entries" && (c.col == "salts" || c.col == "erased") && rng.IntN(2) == 0 {
			where = ` WHERE ` + c.col + ` IS NOT NULL`
		}
		rows, err := raw.Query(ctx(t), `SELECT `+key+`, `+read+` FROM `+c.table+where)
		if err != nil || len(rows) == 0 {
			t.Fatalf("read %s.%s: %v", c.table, c.col, err)
		}
		row := rows[rng.IntN(len(rows))]
		k, old := row[0], row[1]
		isTime := c.col == "created_at" || c.col == "received_at"
		var value any
		set := "?"
		if isTime {
			value, set = int64(1+rng.IntN(1000)), raw.AddMillis(c.col)
		} else {
			value = edit(c.col, old, rng)
		}
		desc := fmt.Sprintf("edit %d: %s.%s of %s %v from %.60v to %.60v", i, c.table, c.col, key, k, old, value)
		if err := raw.Exec(ctx(t), `UPDATE `+c.table+` SET `+c.col+` = `+set+` WHERE `+key+` = ?`, value, k); err != nil {
			// A key already taken: this edit cannot be made.
			t.Logf("%s: refused (%v)", desc, err)
			continue
		}
		r := mustVerify(t, s, v)
		if r.Failure == nil {
			t.Errorf("%s: not detected", desc)
		}
		// Put the cell back as it was.
		newKey := k
		if c.col == key {
			newKey = value
		}
		back := old
		if isTime {
			back = -value.(int64)
		}
		if err := raw.Exec(ctx(t), `UPDATE `+c.table+` SET `+c.col+` = `+set+` WHERE `+key+` = ?`, back, newKey); err != nil {
			t.Fatalf("%s: restore: %v", desc, err)
		}
		if i%25 == 24 {
			// Every edit was put back: the log verifies again. (Checked
			// every 25 edits: a verify per edit doubled the test's time.)
			if r := mustVerify(t, s, v); r.Failure != nil {
				t.Fatalf("after restoring edits up to %d, verify finds %v", i, r.Failure)
			}
		}
	}
}

// edit returns a changed value for a cell.
func edit(col string, old any, rng *rand.Rand) any {
	switch x := old.(type) {
	case nil:
		switch col {
		case "leaf_index":
			return int64(rng.IntN(600))
		case "salts":
			return `{"/payload/zz":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`
		case "erased":
			return `{"/payload/zz":{"kind":"s","hash":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}}`
		case "headers":
			return `{"x":1}`
		default: // seed, content_hash: 32 bytes where there were none
			b := make([]byte, 32)
			b[rng.IntN(32)] = 1
			return b
		}
	case []byte:
		if col == "salts" || col == "erased" || col == "headers" || col == "payload" || col == "note" || col == "id" || col == "name" || col == "service_name" || col == `"user"` || col == "tenant" {
			return editText(col, string(x), rng)
		}
		b := append([]byte(nil), x...)
		b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		return b
	case string:
		return editText(col, x, rng)
	case int64, int32:
		n := asInt(x)
		if col == "size" || col == "tile" || col == "seq" {
			return n*1000 + 7
		}
		return n + 1 + int64(rng.IntN(3))
	}
	panic(fmt.Sprintf("edit %s: %T", col, old))
}

func editText(col, s string, rng *rand.Rand) string {
	switch col {
	case "payload", "headers":
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) != nil || len(m) == 0 || rng.IntN(3) == 0 {
			if m == nil {
				m = map[string]any{}
			}
			m["tampered"] = true
		} else {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			k := keys[rng.IntN(len(keys))]
			switch v := m[k].(type) {
			case string:
				m[k] = v + "x"
			case float64:
				m[k] = v + 1
			case bool:
				m[k] = !v
			case nil:
				m[k] = 0
			default:
				delete(m, k)
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	case "salts":
		var m map[string][]byte
		json.Unmarshal([]byte(s), &m)
		for k := range m {
			m[k][rng.IntN(32)] ^= 1
			break
		}
		if len(m) == 0 {
			m = map[string][]byte{"/payload/zz": make([]byte, 32)}
		}
		b, _ := json.Marshal(m)
		return string(b)
	case "erased":
		var m map[string]auditlog.Commitment
		json.Unmarshal([]byte(s), &m)
		for k, c := range m {
			c.Hash = append([]byte(nil), c.Hash...)
			c.Hash[rng.IntN(32)] ^= 1
			m[k] = c
			break
		}
		b, _ := json.Marshal(m)
		return string(b)
	case "note":
		// One character of the body or the signature.
		i := rng.IntN(len(s) - 1)
		c := s[i]
		r := byte('A')
		if c == 'A' {
			r = 'B'
		}
		if c == '\n' {
			i++
		}
		return s[:i] + string(r) + s[i+1:]
	}
	return s + "x"
}
