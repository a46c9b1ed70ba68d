package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus/driver"
)

// These tests look at the broker's state, which Publish and settling
// update before they return, so no waiting is needed to see what did not
// happen.

func (b *Broker) queueState(name string) (ready, assigned int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[name]
	if q == nil {
		return 0, 0
	}
	for _, c := range q.consumers {
		assigned += len(c.buf) + len(c.unacked)
	}
	return len(q.ready), assigned
}

func publishRaw(t *testing.T, tr driver.Transport, name string) {
	t.Helper()
	body := []byte(`{"headers":{"name":"` + name + `"},"payload":{}}`)
	if err := driver.PublishSync(context.Background(), tr, driver.Message{Name: name, Body: body}); err != nil {
		t.Fatal(err)
	}
}

func TestPrefetchBoundsUnsettledDeliveries(t *testing.T) {
	b := NewBroker()
	defer b.Close()
	tr := b.Connect()
	ch := make(chan driver.Delivery, 10)
	if _, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "svc", Prefetch: 2}, []string{"x"}, func(d driver.Delivery) { ch <- d }); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		publishRaw(t, tr, "x")
	}
	if ready, assigned := b.queueState("svc"); ready != 3 || assigned != 2 {
		t.Fatalf("with prefetch 2: %d ready, %d given to the consumer; want 3 and 2", ready, assigned)
	}
	if err := (<-ch).Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ready, assigned := b.queueState("svc"); ready != 2 || assigned != 2 {
		t.Fatalf("after one ack: %d ready, %d given to the consumer; want 2 and 2", ready, assigned)
	}
}

func TestDefaultPrefetch(t *testing.T) {
	b := NewBroker()
	defer b.Close()
	tr := b.Connect()
	block := make(chan struct{})
	defer close(block)
	if _, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "svc"}, []string{"x"}, func(driver.Delivery) { <-block }); err != nil {
		t.Fatal(err)
	}
	for range DefaultPrefetch + 1 {
		publishRaw(t, tr, "x")
	}
	if ready, assigned := b.queueState("svc"); ready != 1 || assigned != DefaultPrefetch {
		t.Fatalf("%d ready, %d given to the consumer; want 1 and %d", ready, assigned, DefaultPrefetch)
	}
}

func TestTemporaryQueueIsPrivateAndDeletedOnStop(t *testing.T) {
	b := NewBroker()
	defer b.Close()
	tr := b.Connect()
	c1, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "tail", Temporary: true}, []string{"x"}, func(driver.Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "tail", Temporary: true}, []string{"x"}, func(driver.Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	temps, durable := len(b.temps), len(b.queues)
	b.mu.Unlock()
	if temps != 2 || durable != 0 {
		t.Fatalf("two temporary consumers made %d temporary and %d durable queues, want 2 and 0", temps, durable)
	}
	for _, c := range []driver.Consumer{c1, c2} {
		if err := c.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	temps = len(b.temps)
	b.mu.Unlock()
	if temps != 0 {
		t.Errorf("%d temporary queues left after Stop, want 0", temps)
	}
}

func TestBrokerCloseCancelsWaitingRetries(t *testing.T) {
	b := NewBroker()
	tr := b.Connect()
	ch := make(chan driver.Delivery, 1)
	if _, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "svc"}, []string{"x"}, func(d driver.Delivery) { ch <- d }); err != nil {
		t.Fatal(err)
	}
	publishRaw(t, tr, "x")
	if err := (<-ch).Retry(context.Background(), time.Hour, errors.New("later")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	waiting := len(b.retries)
	b.mu.Unlock()
	if waiting != 1 {
		t.Fatalf("%d retries waiting after the connection closed, want 1: the broker owns them", waiting)
	}
	b.Close()
	b.mu.Lock()
	waiting = len(b.retries)
	b.mu.Unlock()
	if waiting != 0 {
		t.Errorf("%d retries waiting after Broker.Close, want 0", waiting)
	}
}
