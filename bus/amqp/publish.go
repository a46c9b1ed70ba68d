package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus/driver"
)

// outgoing is one message to publish.
type outgoing struct {
	exchange  string
	key       string
	mandatory bool
	msg       amqp091.Publishing
}

// returnKey correlates a basic.return with the publish it answers: the
// return carries no delivery tag, only what the message said.
func (o *outgoing) returnKey() string {
	return o.exchange + "\x00" + o.key + "\x00" + o.msg.MessageId
}

// pending is one publish waiting for its confirm.
type pending struct {
	out  *outgoing
	done chan error // buffered: nil, an error, or errResend
	// abandoned is set (under the pubChannel's mu) when the caller gave up
	// waiting; the confirm loop then releases the window slot.
	abandoned bool
}

// errResend tells a waiting publish that its channel died before the
// confirm came: it must be sent again on the next channel.
var errResend = errors.New("resend")

// pubChannel is the confirm-mode channel publishes go through, and the
// bookkeeping that maps confirms and returns to the publishes waiting.
type pubChannel struct {
	t    *Transport
	ch   *amqp091.Channel
	dead chan struct{} // closed once the channel is gone and every pending was answered

	mu       sync.Mutex
	gone     bool
	inflight map[uint64]*pending // by delivery tag
	early    map[uint64]bool     // confirms that arrived before their publish was registered
	returned map[string]int      // returnKey → returns not yet matched with their confirm
}

// openPublisher opens the confirm-mode publish channel on conn and
// declares the exchange.
func (t *Transport) openPublisher(conn *amqp091.Connection) (*pubChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publish channel: %w", err)
	}
	// The notify channels are registered before Confirm so that no confirm
	// is missed, and drained by one goroutine for the channel's life.
	// confirms is buffered for the whole window: amqp091 drops a
	// notification its listener does not take within 5s. returns is
	// unbuffered on purpose: amqp091 hands a basic.return over before it
	// processes the basic.ack that follows it, so with one goroutine
	// reading both, a return is always recorded before its confirm.
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, cap(t.window)+64))
	returns := ch.NotifyReturn(make(chan amqp091.Return))
	closes := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	// Declared as OIH's amqplib assertExchange('event-bus', 'topic') does:
	// durable, not auto-deleted, no arguments.
	if err := ch.ExchangeDeclare(Exchange, "topic", true, false, false, false, nil); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("declare exchange %q: %w", Exchange, err)
	}
	pc := &pubChannel{
		t:        t,
		ch:       ch,
		dead:     make(chan struct{}),
		inflight: make(map[uint64]*pending),
		early:    make(map[uint64]bool),
		returned: make(map[string]int),
	}
	go pc.confirmLoop(confirms, returns, closes)
	return pc, nil
}

func (pc *pubChannel) confirmLoop(confirms <-chan amqp091.Confirmation, returns <-chan amqp091.Return, closes <-chan *amqp091.Error) {
	for confirms != nil || returns != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			o := outgoing{exchange: r.Exchange, key: r.RoutingKey, msg: amqp091.Publishing{MessageId: r.MessageId}}
			pc.mu.Lock()
			pc.returned[o.returnKey()]++
			pc.mu.Unlock()
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			pc.confirm(c.DeliveryTag, c.Ack)
		case <-closes:
			closes = nil
		}
	}
	// The channel is gone: every publish still waiting is sent again on
	// the next channel (its confirm is lost; the broker may or may not have
	// the message, and the duplicate carries the same message-id).
	pc.mu.Lock()
	pc.gone = true
	for tag, p := range pc.inflight {
		delete(pc.inflight, tag)
		if p.abandoned {
			pc.t.release()
		} else {
			p.done <- errResend
		}
	}
	pc.mu.Unlock()
	close(pc.dead)
}

func (pc *pubChannel) confirm(tag uint64, ack bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	p, ok := pc.inflight[tag]
	if !ok {
		// The publishing goroutine has sent but not yet registered it.
		pc.early[tag] = ack
		return
	}
	delete(pc.inflight, tag)
	res := pc.outcome(p, ack)
	if p.abandoned {
		pc.t.release()
		return
	}
	p.done <- res
}

// outcome turns a confirm into the publish's result. pc.mu must be held.
func (pc *pubChannel) outcome(p *pending, ack bool) error {
	if !ack {
		return ErrNacked
	}
	if !p.out.mandatory {
		return nil
	}
	k := p.out.returnKey()
	if n := pc.returned[k]; n > 0 {
		if n == 1 {
			delete(pc.returned, k)
		} else {
			pc.returned[k] = n - 1
		}
		return ErrUnroutable
	}
	return nil
}

// send publishes p on the channel and registers it for its confirm. An
// error means p was not sent: the headers were checked before, so a failed
// write is a failed connection, which amqp091 shuts down, and p must go on
// the next channel.
func (pc *pubChannel) send(p *pending) error {
	dc, err := pc.ch.PublishWithDeferredConfirm(p.out.exchange, p.out.key, p.out.mandatory, false, p.out.msg)
	if err != nil {
		return err
	}
	tag := dc.DeliveryTag
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if ack, ok := pc.early[tag]; ok {
		delete(pc.early, tag)
		p.done <- pc.outcome(p, ack)
		return nil
	}
	if pc.gone {
		p.done <- errResend
		return nil
	}
	pc.inflight[tag] = p
	return nil
}

// abandon marks p, if still waiting on this channel, as given up by its
// caller; it reports false when p was already answered.
func (pc *pubChannel) abandon(p *pending) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, q := range pc.inflight {
		if q == p {
			p.abandoned = true
			return true
		}
	}
	return false
}

func (pc *pubChannel) isDead() bool {
	select {
	case <-pc.dead:
		return true
	default:
		return false
	}
}

func (t *Transport) release() {
	<-t.window
	select {
	case t.drained <- struct{}{}:
	default:
	}
}

// Publish sends m to the event-bus exchange with m.Name as routing key, as
// a persistent application/json message with message-id m.ID and
// timestamp m.CreatedAt, and returns once the broker confirmed it. While
// the connection is down it waits, bounded by ctx, and sends after the
// reconnect; a message whose confirm was lost with the connection is sent
// again. A nack is ErrNacked; with WithMandatory, a message no queue is
// bound for is ErrUnroutable.
func (t *Transport) Publish(ctx context.Context, m driver.Message) error {
	out := &outgoing{
		exchange:  Exchange,
		key:       m.Name,
		mandatory: t.opts.mandatory,
		msg: amqp091.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp091.Persistent,
			MessageId:    m.ID,
			Timestamp:    m.CreatedAt,
			Body:         m.Body,
		},
	}
	return t.publish(ctx, out)
}

func (t *Transport) publish(ctx context.Context, out *outgoing) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := out.msg.Headers.Validate(); err != nil {
		return fmt.Errorf("amqp: message headers: %w", err)
	}
	select {
	case t.window <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for a publish slot: %w", ctx.Err())
	case <-t.life.Done():
		return driver.ErrClosed
	}
	p := &pending{out: out, done: make(chan error, 1)}
	for {
		pc, err := t.waitPublisher(ctx)
		if err != nil {
			t.release()
			return err
		}
		if err := pc.send(p); err != nil {
			// The channel is going down: wait until it is replaced.
			select {
			case <-pc.dead:
			case <-ctx.Done():
				t.release()
				return fmt.Errorf("amqp: publish (%v): %w", err, ctx.Err())
			}
			continue
		}
		select {
		case err := <-p.done:
			if err == errResend {
				continue
			}
			t.release()
			return err
		case <-ctx.Done():
			if pc.abandon(p) {
				// The confirm loop releases the slot when it resolves p.
				return fmt.Errorf("waiting for the broker's confirm: %w", ctx.Err())
			}
			if err := <-p.done; err != errResend {
				t.release()
				return err
			}
			t.release()
			return fmt.Errorf("waiting for the broker's confirm: %w", ctx.Err())
		}
	}
}

// waitPublisher returns the usable publish channel, waiting (bounded by
// ctx) while the connection is down or the broker blocks publishing.
func (t *Transport) waitPublisher(ctx context.Context) (*pubChannel, error) {
	for {
		t.mu.Lock()
		pc, blocked, closing, ch, last := t.pub, t.blocked, t.closing, t.changed, t.lastErr
		t.mu.Unlock()
		if closing {
			return nil, fmt.Errorf("amqp: transport closed: %w", driver.ErrClosed)
		}
		if pc != nil && !blocked && !pc.isDead() {
			return pc, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, waitErr(ctx, last)
		}
	}
}
