package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
)

func TestTracingIsOffUnlessTheEnvironmentAsksForIt(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{name: "nothing set", env: nil},
		{name: "only a service name", env: map[string]string{"OTEL_SERVICE_NAME": "hub"}},
		{name: "an endpoint", env: map[string]string{envOtlpEndpoint: "http://127.0.0.1:1"}, on: true},
		{name: "a traces endpoint", env: map[string]string{envOtlpTraces: "http://127.0.0.1:1/v1/traces"}, on: true},
		{name: "exporter otlp", env: map[string]string{envOtelExporter: "otlp"}, on: true},
		{name: "exporter none beats an endpoint", env: map[string]string{envOtelExporter: "none", envOtlpEndpoint: "http://127.0.0.1:1"}},
		{name: "SDK disabled beats everything", env: map[string]string{envOtelSDKDisabled: "true", envOtelExporter: "otlp"}},
		{name: "http/json", env: map[string]string{envOtlpEndpoint: "http://127.0.0.1:1", envOtlpProtocol: "http/json"}, on: true},
		{name: "grpc is refused", env: map[string]string{envOtlpEndpoint: "http://127.0.0.1:1", envOtlpProtocol: "grpc"}, wantErr: "http/protobuf"},
		{name: "traces protocol beats the general one", env: map[string]string{envOtlpEndpoint: "http://127.0.0.1:1", envOtlpProtocol: "http/protobuf", envOtlpTraceProtocol: "grpc"}, wantErr: "grpc"},
		{name: "another exporter is refused", env: map[string]string{envOtelExporter: "zipkin"}, wantErr: "otlp only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setOtelEnv(t, tc.env)
			tr, err := startTracing(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.shutdown(context.Background())
			if on := tr.provider != nil; on != tc.on {
				t.Errorf("tracing on = %v (%s), want %v", on, tr.desc, tc.on)
			}
		})
	}
}

// setOtelEnv sets the OTEL_* variables of env for the test, and clears the
// others the machine may have set.
func setOtelEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it is sent.
type otlpReceiver struct {
	mu       sync.Mutex
	requests []*coltrace.ExportTraceServiceRequest
	paths    []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var m coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.requests = append(r.requests, &m)
	r.paths = append(r.paths, req.URL.Path)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(out)
}

func TestTracingExportsTheBusSpansOverOTLP(t *testing.T) {
	rec := &otlpReceiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	env := map[string]string{
		envOtlpEndpoint:            srv.URL,
		"OTEL_SERVICE_NAME":        "hub-a",
		"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
	}
	setOtelEnv(t, env)
	ctx := context.Background()
	tr, err := startTracing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tr.provider == nil {
		t.Fatalf("tracing off with %s set", envOtlpEndpoint)
	}
	br := memory.NewBroker()
	defer br.Close()
	b, err := bus.New(br.Connect(), bus.WithService("s"), bus.WithoutValidation(), bus.WithTracerProvider(tr.provider))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.New("trace.export", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tr.shutdown(sctx); err != nil { // flushes
		t.Fatal(err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.requests) == 0 {
		t.Fatal("the OTLP endpoint received nothing")
	}
	if rec.paths[0] != "/v1/traces" {
		t.Errorf("exported to %s, want /v1/traces", rec.paths[0])
	}
	var found bool
	for _, req := range rec.requests {
		for _, rs := range req.ResourceSpans {
			res := map[string]string{}
			for _, kv := range rs.Resource.Attributes {
				res[kv.Key] = kv.Value.GetStringValue()
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if s.Name != "publish trace.export" {
						continue
					}
					found = true
					if res["service.name"] != "hub-a" || res["deployment.environment.name"] != "test" {
						t.Errorf("resource %v, want service.name and attributes from the environment", res)
					}
					if ss.Scope.Name != bus.TracerName {
						t.Errorf("scope %q, want %q", ss.Scope.Name, bus.TracerName)
					}
				}
			}
		}
	}
	if !found {
		t.Error("no publish span among the exported spans")
	}
}
