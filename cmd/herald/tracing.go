package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The OpenTelemetry variables serve reads itself; the exporter and the SDK
// read the rest of the standard OTEL_* set (see the README).
const (
	envOtelSDKDisabled   = "OTEL_SDK_DISABLED"
	envOtelExporter      = "OTEL_TRACES_EXPORTER"
	envOtlpEndpoint      = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envOtlpTraces        = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envOtlpProtocol      = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envOtlpTraceProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// tracing is what startTracing set up: a provider for the bus (nil when
// tracing is off) and how to flush and stop it.
type tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
	desc     string
}

// startTracing configures OTLP trace export from the standard OTEL_*
// variables only. Tracing is on when OTEL_TRACES_EXPORTER is "otlp" or an
// OTLP endpoint variable is set, and off when OTEL_SDK_DISABLED is true,
// OTEL_TRACES_EXPORTER is "none", or nothing asks for it: a hub that no
// one told where to send traces sends none. Export is OTLP over HTTP
// (http/protobuf, or http/json); the endpoint, headers, timeout,
// compression and TLS come from OTEL_EXPORTER_OTLP_*, the sampler from
// OTEL_TRACES_SAMPLER, batching from OTEL_BSP_*, the service's resource
// from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (default
// service.name herald), all read by the OpenTelemetry SDK.
func startTracing(ctx context.Context) (tracing, error) {
	// The exporter and the SDK read the environment themselves: so does this.
	getenv := os.Getenv
	off := tracing{shutdown: func(context.Context) error { return nil }, desc: "off"}
	if strings.EqualFold(strings.TrimSpace(getenv(envOtelSDKDisabled)), "true") {
		return off, nil
	}
	switch exp := strings.TrimSpace(getenv(envOtelExporter)); exp {
	case "none":
		return off, nil
	case "":
		if getenv(envOtlpEndpoint) == "" && getenv(envOtlpTraces) == "" {
			return off, nil
		}
	case "otlp":
	default:
		return off, fmt.Errorf("%s=%s: herald exports traces with otlp only (or none)", envOtelExporter, exp)
	}
	protocol := getenv(envOtlpTraceProtocol)
	if protocol == "" {
		protocol = getenv(envOtlpProtocol)
	}
	switch protocol {
	case "", "http/protobuf", "http/json":
	default:
		return off, fmt.Errorf("OTLP protocol %q: herald exports over HTTP, set %s to http/protobuf or http/json", protocol, envOtlpProtocol)
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return off, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// Later sources win: the environment's service name over herald's.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("herald"), semconv.ServiceVersion(buildVersion())),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return off, fmt.Errorf("trace resource (%s): %w", "OTEL_RESOURCE_ATTRIBUTES", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	endpoint := getenv(envOtlpTraces)
	if endpoint == "" {
		endpoint = getenv(envOtlpEndpoint)
	}
	if endpoint == "" {
		endpoint = "the OTLP default, http://localhost:4318"
	}
	if protocol == "" {
		protocol = "http/protobuf"
	}
	return tracing{provider: tp, shutdown: tp.Shutdown, desc: "OTLP " + protocol + " to " + redactURL(endpoint)}, nil
}
