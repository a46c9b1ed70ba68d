package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

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

// pending is one publish, from the moment it takes a window slot until the
// broker's answer (or giving up) frees it. It is answered once: by the
// confirm, by its context ending, or by Close; an answered publish whose
// confirm has not come keeps its slot until the confirm (or the channel's
// end) arrives.
type pending struct {
	out     *outgoing
	ctx     context.Context
	confirm func(error)

	answered atomic.Bool
}

// errResend says a publish's channel died before the publish was
// registered for its confirm: it must be sent again on the next channel.
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
	// the next channel, in the order it was sent (its confirm is lost; the
	// broker may or may not have the message, and the duplicate carries
	// the same message-id).
	pc.mu.Lock()
	pc.gone = true
	tags := make([]uint64, 0, len(pc.inflight))
	for tag := range pc.inflight {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	again := make([]*pending, 0, len(tags))
	for _, tag := range tags {
		again = append(again, pc.inflight[tag])
		delete(pc.inflight, tag)
	}
	pc.mu.Unlock()
	close(pc.dead)
	if len(again) > 0 {
		go pc.t.resend(again)
	}
}

func (pc *pubChannel) confirm(tag uint64, ack bool) {
	pc.mu.Lock()
	p, ok := pc.inflight[tag]
	if !ok {
		// The publishing goroutine has sent but not yet registered it.
		pc.early[tag] = ack
		pc.mu.Unlock()
		return
	}
	delete(pc.inflight, tag)
	res := pc.outcome(p, ack)
	pc.mu.Unlock()
	pc.t.release()
	pc.t.answer(p, res)
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
// error means p must go on the next channel: a failed write is a failed
// connection (the headers were checked before), which amqp091 shuts down,
// and errResend is a channel that died before p was registered.
func (pc *pubChannel) send(p *pending) error {
	dc, err := pc.ch.PublishWithDeferredConfirm(p.out.exchange, p.out.key, p.out.mandatory, false, p.out.msg)
	if err != nil {
		return err
	}
	tag := dc.DeliveryTag
	pc.mu.Lock()
	if ack, ok := pc.early[tag]; ok {
		delete(pc.early, tag)
		res := pc.outcome(p, ack)
		pc.mu.Unlock()
		pc.t.release()
		pc.t.answer(p, res)
		return nil
	}
	if pc.gone {
		pc.mu.Unlock()
		return errResend
	}
	pc.inflight[tag] = p
	pc.mu.Unlock()
	return nil
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
// timestamp m.CreatedAt, m.Headers as message headers (string values), and calls confirm once the broker confirmed it.
// It waits, bounded by ctx, for a free slot in the publish window and,
// while the connection is down or the broker blocks publishing, for it to
// come back; a message whose confirm was lost with the connection is sent
// again. A nack is ErrNacked; with WithMandatory, a message no queue is
// bound for is ErrUnroutable.
func (t *Transport) Publish(ctx context.Context, m driver.Message, confirm func(error)) error {
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
	if len(m.Headers) > 0 {
		h := make(amqp091.Table, len(m.Headers))
		for k, v := range m.Headers {
			h[k] = v
		}
		out.msg.Headers = h
	}
	return t.publish(ctx, out, confirm)
}

// publish hands out over and arranges for confirm to be called once.
func (t *Transport) publish(ctx context.Context, out *outgoing, confirm func(error)) error {
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
	p := &pending{out: out, ctx: ctx, confirm: confirm}
	if err := t.send(p); err != nil {
		t.release()
		return err
	}
	// When ctx ends first, the caller gets its error at once; the slot
	// stays taken until the confirm (or the channel's end) arrives.
	t.watch.Add(ctx, p)
	if p.answered.Load() {
		t.watch.Remove(ctx, p) // answered before it was watched
	}
	return nil
}

// publishWait publishes out and waits for the broker's answer.
func (t *Transport) publishWait(ctx context.Context, out *outgoing) error {
	answer := make(chan error, 1)
	if err := t.publish(ctx, out, func(err error) { answer <- err }); err != nil {
		return err
	}
	return <-answer
}

// send sends p on the current publish channel, waiting (bounded by p's
// context) for one, and moving to the next channel when this one dies
// before p is registered for its confirm.
func (t *Transport) send(p *pending) error {
	for {
		pc, err := t.waitPublisher(p.ctx)
		if err != nil {
			return err
		}
		err = pc.send(p)
		if err == nil {
			return nil
		}
		// The channel is going down: wait until it is replaced.
		select {
		case <-pc.dead:
		case <-p.ctx.Done():
			return fmt.Errorf("amqp: publish (%v): %w", err, p.ctx.Err())
		}
	}
}

// resend sends again, in order, the publishes whose channel died before
// their confirm came. A publish that cannot be sent any more (its context
// ended, the transport closed) is answered with why and gives up its slot.
func (t *Transport) resend(ps []*pending) {
	for _, p := range ps {
		if p.answered.Load() {
			// Its caller has gone: nothing waits for a confirm.
			t.release()
			continue
		}
		if err := t.send(p); err != nil {
			t.release()
			t.answer(p, err)
		}
	}
}

// answer calls p's confirm, the first time only.
func (t *Transport) answer(p *pending, err error) {
	if !p.answered.CompareAndSwap(false, true) {
		return
	}
	t.watch.Remove(p.ctx, p)
	p.confirm(err)
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
