package event

import (
	"encoding/json"
	"testing"
)

// benchBody is an OIH event of ~280 bytes with an extra header, as the bus
// benchmarks publish.
var benchBody = []byte(`{"headers":{"name":"bench.user.created","serviceName":"bench-publisher","createdAt":1764456000000,"id":"019ad0a2-6a3b-7f1e-9c55-2f0b3a1c9d77","tenant":"tenant-0001"},"payload":{"t":1764456000000123456,"id":"user-000000042","username":"someone.with.a.fairly.long.name@example.com"}}`)

// BenchmarkDecode is what a consumer pays per delivery; the encoding/json
// variants are the envelope decoded by reflection alone, and what a
// consumer without herald pays to read the payload of the same body.
func BenchmarkDecode(b *testing.B) {
	b.Run("herald", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(benchBody); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-envelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e Event
			if err := e.decodeAny(benchBody); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-payload-struct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v struct {
				Payload struct {
					T        int64  `json:"t"`
					ID       string `json:"id"`
					Username string `json:"username"`
				} `json:"payload"`
			}
			if err := json.Unmarshal(benchBody, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	ev, err := Decode(benchBody)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
