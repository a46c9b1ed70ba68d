package amqp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestSetBindingsLeavesBindingsItNeverMade: a binding made outside herald
// (an OIH Node service sharing the queue) survives every SetBindings, and
// the record stays one message long.
func TestSetBindingsLeavesBindingsItNeverMade(t *testing.T) {
	tr := dialTest(t)
	queue := fmt.Sprintf("herald-test-bindings-%08x", rand.Uint32())
	t.Cleanup(func() { deleteQueues(t, queue) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tr.SetBindings(ctx, queue, []string{queue + ".a"}); err != nil {
		t.Fatal(err)
	}
	// What OIH's library does: assertQueue and bindQueue, no record.
	conn, err := amqp091.Dial(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, queue+".oih", Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]string{{queue + ".b"}, {queue + ".c", queue + ".d"}} {
		if _, err := tr.SetBindings(ctx, queue, set); err != nil {
			t.Fatal(err)
		}
	}
	info, err := tr.InspectQueue(ctx, queue)
	if err != nil || !slices.Equal(info.Bindings, []string{queue + ".c", queue + ".d"}) {
		t.Errorf("recorded bindings %q (%v), want the last set", info.Bindings, err)
	}
	if rec, err := ch.QueueDeclarePassive(bindingsQueue(queue), true, false, false, false, bindingsQueueArgs); err != nil || rec.Messages != 1 {
		t.Errorf("the record queue holds %d messages (%v), want 1", rec.Messages, err)
	}
	// Routed: the binding herald never made, and the last set; not the
	// patterns herald bound before.
	for _, key := range []string{"oih", "a", "b", "c", "d"} {
		if err := ch.Publish(Exchange, queue+"."+key, false, false, amqp091.Publishing{Body: []byte(key)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, string(d.Body))
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"c", "d", "oih"}) {
		t.Errorf("the queue got %q, want c, d and oih", got)
	}
	if q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Errorf("%d more messages in the queue (%v): a pattern herald removed is still bound", q.Messages, err)
	}
}
