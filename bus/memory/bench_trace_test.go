package memory_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/heraldhq/herald/bus"
)

// BenchmarkEndToEndTraced is BenchmarkEndToEnd with every publish and
// delivery traced and sampled by the OpenTelemetry SDK (spans recorded,
// exported nowhere): what tracing costs when it is on.
func BenchmarkEndToEndTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer tp.Shutdown(context.Background())
	runEndToEnd(b, bus.WithTracerProvider(tp))
}
