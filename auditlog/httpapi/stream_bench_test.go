package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
	"github.com/heraldhq/herald/internal/cputime"
)

// benchUsers authenticates "admin" and "tenant-<n>" tokens: an admin,
// and a user of tenant n.
type benchUsers struct{}

func (benchUsers) Authenticate(_ context.Context, r *http.Request) (*iam.User, error) {
	tok, err := iam.BearerToken(r)
	if err != nil {
		return nil, err
	}
	if tok == "admin" {
		return &iam.User{Sub: "admin", Permissions: []string{iam.PermissionAll}, IsAdmin: true}, nil
	}
	return &iam.User{Sub: "u-" + tok, Tenant: tok, Permissions: []string{DefaultReadPermission}}, nil
}

// BenchmarkIngestWithStreams measures what live streams cost ingest: b.N
// events published to the in-process broker and stored by the ingester
// as herald serve runs it (500 concurrent handlers, batches of 500,
// SQLite, the integrator beside them), as fast as it takes them, with no
// stream open (the peer) and with 100 streams open, each read by its own
// client (in this process):
//
//	go test ./auditlog/httpapi -run '^$' -bench IngestWithStreams -benchtime 30000x
//
// streams=100/tenants: 100 tenant users, events spread over their 100
// tenants (each stream carries 1 in 100); streams=100/admin: 100 admins,
// each stream carrying every event.
func BenchmarkIngestWithStreams(b *testing.B) {
	for _, mode := range []string{"streams=0", "streams=100/tenants", "streams=100/admin"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "audit.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store, Buffer: 100_000})
			defer feed.Close()
			srv := httptest.NewServer(New(Config{Store: store, Auth: benchUsers{}, Feed: feed}))
			defer srv.Close()
			// The integrator runs beside the ingester, as in herald serve,
			// in every case: the peer too.
			integ := auditlog.RunIntegrator(ctx, auditlog.IntegratorConfig{Store: store, Signer: newSigner(b, "bench")})
			defer integ.Close()
			in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, BatchSize: 500,
				OnCommitted: feed.Committed, OnCommit: integ.Kick})
			defer in.Close()

			var streams int
			var received atomic.Int64
			var wg sync.WaitGroup
			sctx, stop := context.WithCancel(ctx)
			defer stop()
			if mode != "streams=0" {
				streams = 100
				for i := range streams {
					tok := "admin"
					if strings.HasSuffix(mode, "tenants") {
						tok = fmt.Sprintf("tenant-%d", i)
					}
					ready := make(chan struct{})
					wg.Add(1)
					go func() {
						defer wg.Done()
						readStream(b, sctx, srv.URL, tok, ready, &received)
					}()
					<-ready
				}
			}
			// Ingest as herald serve runs it: from the bus (the in-process
			// broker here), 500 handlers feeding batches of 500.
			broker := memory.NewBroker()
			defer broker.Close()
			var stored atomic.Int64
			done := make(chan struct{})
			audit, err := bus.New(broker.Connect(), bus.WithService(auditlog.QueueName), bus.WithConcurrency(500), bus.WithPrefetch(1000))
			if err != nil {
				b.Fatal(err)
			}
			defer audit.Close(ctx)
			err = audit.SubscribeAll(ctx, []string{"#"}, func(ctx context.Context, ev *event.Event) error {
				if err := in.Handle(ctx, ev); err != nil {
					return err
				}
				if stored.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			pub, err := bus.New(broker.Connect(), bus.WithService("flow-repository"), bus.WithoutValidation())
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close(ctx)
			events := make([]*event.Event, b.N)
			for i := range events {
				events[i], _ = event.New("flowrepo.flow.created", json.RawMessage(fmt.Sprintf(
					`{"tenant":"tenant-%d","user":"user-%05d","flowId":"flow-%08d","note":"created from the integration wizard"}`,
					i%100, i%5000, i)))
			}
			b.ResetTimer()
			cpu0, _ := cputime.Process()
			start := time.Now()
			go func() {
				for _, ev := range events {
					if err := pub.Publish(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			<-done
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			if streams > 0 {
				want := int64(b.N)
				if strings.HasSuffix(mode, "admin") {
					want *= int64(streams)
				}
				deadline := time.Now().Add(time.Minute)
				for received.Load() < want && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if got := received.Load(); got != want {
					b.Errorf("the streams carried %d entries, want %d", got, want)
				}
				b.ReportMetric(float64(received.Load())/time.Since(start).Seconds(), "streamed/s")
			}
			// The process's CPU per event, until every stream has carried
			// its entries (the in-process clients' reading included): on a
			// shared machine it moves much less than the rate.
			if cpu, ok := cputime.Process(); ok {
				b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
			}
			stop()
			wg.Wait()
		})
	}
}

// readStream reads GET /logs/stream as token, counting its entries, until
// ctx ends; ready is closed once the stream is open.
func readStream(b *testing.B, ctx context.Context, base, token string, ready chan struct{}, entries *atomic.Int64) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/logs/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Error(err)
		close(ready)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	opened := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "event: ready" && !opened:
			opened = true
			close(ready)
		case line == "event: entry":
			entries.Add(1)
		case line == "event: close":
			b.Errorf("stream of %s closed by the server", token)
		}
	}
	if !opened {
		close(ready)
	}
}
