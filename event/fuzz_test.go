package event

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and
// whatever it accepts must encode and decode back to the same event.
func FuzzDecode(f *testing.F) {
	for _, s := range oihSamples {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"headers":{"name":"a","createdAt":1e300},"payload":{}}`))
	f.Add([]byte(`{"headers":{"name":"a","createdAt":"-1"},"payload":null}`))
	f.Add([]byte(`{"headers":{"name":"a","x":{"nested":[1,2]}},"payload":{"\u00e9":"\ud83d\ude00"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(body)
		if err != nil {
			return
		}
		assertRoundTrip(t, ev)
	})
}

// assertRoundTrip checks decode(encode(ev)) == ev.
func assertRoundTrip(t *testing.T, ev *Event) {
	t.Helper()
	b, err := ev.Encode()
	if err != nil {
		t.Fatalf("encode decoded event %v: %v", ev, err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatalf("decode encoded event %s: %v", b, err)
	}
	if !sameEvent(ev, back) {
		t.Fatalf("round trip changed the event:\n in  %#v\n out %#v\n wire %s", ev, back, b)
	}
}

func sameEvent(a, b *Event) bool {
	if a.Headers.Name != b.Headers.Name || a.Headers.ServiceName != b.Headers.ServiceName || a.Headers.ID != b.Headers.ID {
		return false
	}
	// The wire form has millisecond precision.
	if a.Headers.CreatedAt.UnixMilli() != b.Headers.CreatedAt.UnixMilli() {
		return false
	}
	if len(a.Headers.Extra) != len(b.Headers.Extra) {
		return false
	}
	for k, v := range a.Headers.Extra {
		if !testkit.JSONEqual(v, b.Headers.Extra[k]) {
			return false
		}
	}
	return testkit.JSONEqual(a.Payload, b.Payload)
}

// TestRoundTripProperty encodes and decodes many random events.
func TestRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
		n := 1 + r.IntN(8)
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	value := func() any {
		switch r.IntN(5) {
		case 0:
			return word()
		case 1:
			return r.IntN(1 << 20)
		case 2:
			return r.IntN(2) == 0
		case 3:
			return []any{word(), r.IntN(10)}
		default:
			return map[string]any{word(): word(), "n": nil}
		}
	}
	for i := range 2000 {
		words := make([]string, 1+r.IntN(4))
		for j := range words {
			words[j] = word()
		}
		payload := map[string]any{}
		for range r.IntN(6) {
			payload[word()] = value()
		}
		ev, err := New(strings.Join(words, "."), payload)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if r.IntN(3) == 0 {
			ev.Headers.CreatedAt = time.Time{}
		}
		if r.IntN(2) == 0 {
			ev.Headers.ServiceName = word()
		}
		if r.IntN(3) == 0 {
			ev.Headers.Extra = map[string]json.RawMessage{word(): json.RawMessage(`"` + word() + `"`)}
		}
		if err := ev.Validate(0); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		assertRoundTrip(t, ev)
	}
}
