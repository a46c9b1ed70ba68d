package main

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/testkit"
)

// serveRefuses runs serve with args (plus free addresses and a data
// folder of its own) and returns its exit code and standard error; a serve
// that starts instead is stopped after a while.
func serveRefuses(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var stdout, stderr testkit.Buffer
	all := append([]string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, args...)
	code := run(ctx, all, &stdout, &stderr)
	return code, stderr.String()
}

func TestServeRefusesEventPatternsOutsideTheCatalogue(t *testing.T) {
	code, msg := serveRefuses(t, "--nats-listen", freeAddr(t), "--events", "iam.user.deleted,iam.user.craeted")
	if code != 2 || !strings.Contains(msg, "did you mean iam.user.created") || !strings.Contains(msg, "--no-validate") {
		t.Errorf("serve --events with a typo: exit %d, stderr %q; want 2 with a suggestion and --no-validate", code, msg)
	}
}

func TestServeWithABrokerURLRefusesNATSListen(t *testing.T) {
	t.Setenv(envBrokerURL, "amqp://guest:s3cret@127.0.0.1:1/")
	code, msg := serveRefuses(t, "--nats-listen", freeAddr(t))
	if code != 2 || !strings.Contains(msg, envBrokerURL) || strings.Contains(msg, "s3cret") {
		t.Errorf("serve with %s and --nats-listen: exit %d, stderr %q; want 2 naming the variable, without its password", envBrokerURL, code, msg)
	}
}

func TestServeRefusesAStoreItCannotUse(t *testing.T) {
	for _, store := range []string{"mysql://herald@db/herald", "postgres//herald@db/herald", "postgresql:/db/herald", "sqlite://"} {
		code, msg := serveRefuses(t, "--nats-listen", freeAddr(t), "--store", store)
		if code != 2 || !strings.Contains(msg, "--store") {
			t.Errorf("serve --store %s: exit %d, stderr %q; want 2 naming --store", store, code, msg)
		}
	}
}

func TestStorePathsAndURLs(t *testing.T) {
	cases := []struct {
		raw, postgres, schema, path string
	}{
		{"", "", "", "d/audit.db"},
		{"audit.db", "", "", "audit.db"},
		{"/var/lib/herald/audit.db", "", "", "/var/lib/herald/audit.db"},
		{`C:\herald\audit.db`, "", "", `C:\herald\audit.db`},
		{"sqlite:///var/lib/audit.db", "", "", "/var/lib/audit.db"},
		{"postgres://h@db/herald", "postgres://h@db/herald", "", ""},
		{"postgres://h@db/herald?sslmode=disable&schema=audit", "postgres://h@db/herald?sslmode=disable", "audit", ""},
		{"postgresql://h@db/herald?schema=audit", "postgresql://h@db/herald", "audit", ""},
	}
	for _, c := range cases {
		s, err := parseStore(c.raw, "d")
		if err != nil || s.postgres != c.postgres || s.schema != c.schema || s.path != c.path {
			t.Errorf("parseStore(%q) = %+v, %v; want postgres %q schema %q path %q", c.raw, s, err, c.postgres, c.schema, c.path)
		}
	}
}

func TestATakenNATSPortSuggestsAFolderOfItsOwn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, msg := serveRefuses(t, "--nats-listen", ln.Addr().String())
	if code != 1 || !strings.Contains(msg, "--nats-listen") || !strings.Contains(msg, "own --data") || !strings.Contains(msg, "--broker nats://"+ln.Addr().String()) {
		t.Errorf("exit %d, stderr %q: want 1, suggesting --broker or a free --nats-listen with its own --data", code, msg)
	}
}

func TestServeBannerHidesTheBrokerPasswordAndSaysWhereTheURLCameFrom(t *testing.T) {
	o := serveOptions{broker: "amqp://herald:s3cret@rabbit:5672/", brokerFromEnv: true}
	var b strings.Builder
	printBanner(&b, "http://127.0.0.1:3007", o.describeBroker(o.broker), "SQLite d/audit.db", "admin token", []string{"#"}, "")
	out := b.String()
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "amqp://herald:xxxxx@rabbit:5672/") || !strings.Contains(out, "from "+envBrokerURL) {
		t.Errorf("banner:\n%s\nwant the broker without its password, said to come from %s", out, envBrokerURL)
	}
}

// TestServeKeepsItsPostgresTablesInTheSchemaOfTheStoreURL: --store's
// schema parameter puts every table, the migrations' record included,
// in that schema, and nothing in the connection's default one.
func TestServeKeepsItsPostgresTablesInTheSchemaOfTheStoreURL(t *testing.T) {
	store, db := postgresSchema(t)
	schema, _ := url.Parse(store)
	s := startServe(t, "--store", store, "--nats-listen", freeAddr(t), "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	if !strings.Contains(s.banner, "schema "+schema.Query().Get("schema")) {
		t.Errorf("the banner does not name the schema:\n%s", s.banner)
	}
	rows, err := db.Query(context.Background(), `SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, schema.Query().Get("schema"))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"entries", "entry_count", "herald_schema_migrations"} {
		if !slices.Contains(tables, want) {
			t.Errorf("schema %s has tables %q, want %s among them", schema.Query().Get("schema"), tables, want)
		}
	}
}
