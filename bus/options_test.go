package bus_test

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
)

func TestDefaultRetryPolicy(t *testing.T) {
	want := bus.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Second, MaxDelay: time.Minute, Jitter: 0.2}
	if got := bus.DefaultRetryPolicy(); got != want {
		t.Errorf("DefaultRetryPolicy() = %+v, want %+v", got, want)
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	p := bus.RetryPolicy{InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		time.Second, time.Second, time.Second,
	}
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := p.Backoff(1000); got != time.Second {
		t.Errorf("Backoff(1000) = %v, want the cap %v", got, time.Second)
	}
}

func TestBackoffIsMonotoneAndNeverNegative(t *testing.T) {
	for name, p := range map[string]bus.RetryPolicy{
		"capped":   {InitialDelay: time.Second, MaxDelay: time.Minute},
		"uncapped": {InitialDelay: time.Second},
		"odd cap":  {InitialDelay: 3 * time.Millisecond, MaxDelay: 1001 * time.Millisecond},
	} {
		prev := time.Duration(0)
		for attempt := 1; attempt <= 200; attempt++ {
			d := p.Backoff(attempt)
			if d < prev {
				t.Errorf("%s: Backoff(%d) = %v, less than Backoff(%d) = %v", name, attempt, d, attempt-1, prev)
				break
			}
			if p.MaxDelay > 0 && d > p.MaxDelay {
				t.Errorf("%s: Backoff(%d) = %v, above the cap %v", name, attempt, d, p.MaxDelay)
				break
			}
			prev = d
		}
	}
}

func TestBackoffJitterStaysWithinItsFraction(t *testing.T) {
	for _, jitter := range []float64{0.2, 0.5, 1, 3} {
		p := bus.RetryPolicy{InitialDelay: 10 * time.Second, MaxDelay: time.Minute, Jitter: jitter}
		exact := p
		exact.Jitter = 0
		frac := min(jitter, 1) // more than the whole delay is clamped to it
		for attempt := 1; attempt <= 8; attempt++ {
			base := exact.Backoff(attempt)
			lo := base - time.Duration(frac*float64(base))
			seen := make(map[time.Duration]bool)
			for range 200 {
				d := p.Backoff(attempt)
				if d < lo || d > base {
					t.Fatalf("jitter %v: Backoff(%d) = %v, want within [%v, %v]", jitter, attempt, d, lo, base)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Errorf("jitter %v: Backoff(%d) returned one value in 200 calls, want them spread", jitter, attempt)
			}
		}
	}
}
