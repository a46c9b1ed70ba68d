package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/oih"
)

func TestTypedPublishAndHandle(t *testing.T) {
	br := newBroker(t)
	pub := newBus(t, br.Connect(), bus.WithService("accounts"))
	sub := newBus(t, br.Connect(), bus.WithService("flow-repository"))
	got := make(chan oih.IAMUserCreated, 1)
	envelopes := make(chan *event.Event, 1)
	if err := bus.On(context.Background(), sub, func(ctx context.Context, e oih.IAMUserCreated) error {
		got <- e
		envelopes <- bus.EventFrom(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishTyped(context.Background(), pub, oih.IAMUserCreated{ID: "u-1", Username: "jane@example.com"}); err != nil {
		t.Fatal(err)
	}
	if e := receive(t, got); e.ID != "u-1" || e.Username != "jane@example.com" {
		t.Errorf("handled %+v", e)
	}
	if ev := receive(t, envelopes); ev == nil || ev.Headers.Name != "iam.user.created" || ev.Headers.ServiceName != "accounts" {
		t.Errorf("EventFrom gave %v, want the envelope", ev)
	}
	if bus.EventFrom(context.Background()) != nil {
		t.Error("EventFrom outside a handler is not nil")
	}
}

func TestTypedFamilyCarriesItsWildcard(t *testing.T) {
	br := newBroker(t)
	pub := newBus(t, br.Connect(), bus.WithService("dispatcher-service"))
	sub := newBus(t, br.Connect(), bus.WithService("sdf-adapter"))
	got := make(chan oih.Dispatch, 2)
	if err := bus.On(context.Background(), sub, func(_ context.Context, d oih.Dispatch) error {
		got <- d
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, flow := range []string{"f-1", "f-2"} {
		if err := bus.PublishTyped(context.Background(), pub, oih.Dispatch{TargetFlowID: flow, Meta: oih.DispatchMeta{RecordUID: "r-" + flow}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, flow := range []string{"f-1", "f-2"} {
		if d := receive(t, got); d.TargetFlowID != flow || d.Meta.RecordUID != "r-"+flow {
			t.Errorf("handled %+v, want target %s", d, flow)
		}
	}
}

func TestTypedPublishIsCheckedByTheCatalogue(t *testing.T) {
	br := newBroker(t)
	pub := newBus(t, br.Connect(), bus.WithService("accounts"))
	// A family's zero value names the pattern, never an event.
	if err := bus.PublishTyped(context.Background(), pub, oih.Dispatch{}); err == nil {
		t.Error("published dispatch.* as an event name")
	}
}

// The same bytes never decode: the delivery is dead-lettered at once, not
// after retries an hour apart.
func TestPayloadThatDoesNotFitTheTypeIsDeadLetteredAtOnce(t *testing.T) {
	br := newBroker(t)
	pub := newBus(t, br.Connect(), bus.WithService("accounts"), bus.WithoutValidation())
	sub := newBus(t, br.Connect(), bus.WithService("s"), bus.WithRetry(bus.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Hour}))
	called := make(chan struct{}, 1)
	if err := bus.On(context.Background(), sub, func(context.Context, oih.IAMUserCreated) error {
		called <- struct{}{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(context.Background(), mustEvent(t, "iam.user.created", map[string]any{"id": 7})); err != nil {
		t.Fatal(err)
	}
	lister := sub.Transport().(driver.DeadLetterLister)
	deadline := time.Now().Add(wait)
	for {
		dls, err := lister.DeadLetters(context.Background(), "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == 1 {
			if !strings.Contains(dls[0].Error, "decode iam.user.created into oih.IAMUserCreated") || dls[0].Attempts != 1 {
				t.Errorf("dead letter says %q after %d attempts, want the decode error after 1", dls[0].Error, dls[0].Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivery was never dead-lettered")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-called:
		t.Error("the handler ran with a payload that does not fit its type")
	default:
	}
}
