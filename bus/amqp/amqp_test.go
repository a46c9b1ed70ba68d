package amqp

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/bus/bustest"
	"github.com/heraldhq/herald/bus/driver"
)

func TestConformance(t *testing.T) {
	testURL(t)
	rec := &queueRecorder{}
	t.Cleanup(func() { deleteQueues(t, rec.list()...) })
	bustest.Run(t, bustest.Harness{
		NewTransport: func(tb testing.TB) driver.Transport { return recordingTransport{dialTest(tb), rec} },
		// Closes the connections of the case's own transports (named after
		// the test), not every connection on a shared broker.
		Disconnect: func(tb testing.TB) {
			if n := closeConnections(tb); n == 0 {
				tb.Fatalf("no broker connection named %q to close", connName(tb))
			}
		},
		Features: bustest.Features{MinRetryDelayMillis: int(MinRetryDelay / time.Millisecond)},
	})
}

func TestRetryStepRoundsUpToPowersOfTwoAndCaps(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		delay, max, want time.Duration
	}{
		{0, time.Hour, 100 * ms},
		{-time.Second, time.Hour, 100 * ms},
		{1 * ms, time.Hour, 100 * ms},
		{100 * ms, time.Hour, 100 * ms},
		{101 * ms, time.Hour, 200 * ms},
		{time.Second, time.Hour, 1600 * ms},
		{800 * ms, time.Hour, 800 * ms},
		{time.Minute, time.Hour, 102400 * ms},
		{2 * time.Hour, time.Hour, time.Hour},
		{55 * time.Minute, time.Hour, time.Hour}, // the next power (54m36.8s·2) is past the cap
		{30 * time.Minute, time.Hour, 3276800 * ms},
		{5 * time.Second, 3 * time.Second, 3 * time.Second},
	} {
		if got := retryStep(tc.delay, tc.max); got != tc.want {
			t.Errorf("retryStep(%v, cap %v) = %v, want %v", tc.delay, tc.max, got, tc.want)
		}
	}
	if got := retryQueueName("audit-log", 1600*ms); got != "audit-log.retry.1600ms" {
		t.Errorf("retry queue name = %q", got)
	}
}

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	step := 100 * time.Millisecond
	for i := range 10 {
		d := b.next()
		if d < step/2 || d > step {
			t.Errorf("wait %d = %v, want between %v and %v", i, d, step/2, step)
		}
		if step *= 2; step > time.Second {
			step = time.Second
		}
	}
}

func TestAttemptHeader(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int
	}{
		{nil, 1}, {int32(3), 3}, {int64(7), 7}, {int(2), 2}, {int16(4), 4}, {"5", 5}, {int32(0), 1}, {"x", 1},
	} {
		h := map[string]any{}
		if tc.v != nil {
			h[HeaderAttempt] = tc.v
		}
		if got := attemptOf(h); got != tc.want {
			t.Errorf("attemptOf(%#v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}
