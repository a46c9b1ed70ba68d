package nats

import (
	"testing"

	natsgo "github.com/nats-io/nats.go"
)

// TestAckNumbers: the delivery count and stream sequence read from an ack
// subject are what nats.go's own parser reads, and a subject it refuses
// is refused.
func TestAckNumbers(t *testing.T) {
	for _, reply := range []string{
		"$JS.ACK.HERALD_EVENTS.billing.3.1042.998.1764480000000000000.7",
		"$JS.ACK._.ABCDEFGH.HERALD_EVENTS.billing.3.1042.998.1764480000000000000.7.x1y2",
		"$JS.ACK.hub.ABCDEFGH.HERALD_EVENTS.billing.1.18446744073709551615.1.1764480000000000000.0",
		"$JS.ACK.hub.ABCDEFGH.HERALD_EVENTS.billing.12.5.4.1764480000000000000.0.tok.more",
		"$JS.ACK.HERALD_EVENTS.billing.x.12.4.1764480000000000000.0",
		"$JS.ACK.HERALD_EVENTS.billing.2.-1.4.1764480000000000000.0",
		"$JS.ACK.HERALD_EVENTS.billing.2.1042.4.1764480000000000000",
		"$JS.ACK._.ABCDEFGH.HERALD_EVENTS.billing.2.1042.4.1764480000000000000",
		"$JS.NAK.HERALD_EVENTS.billing.3.1042.998.1764480000000000000.7",
		"_INBOX.abc",
		"",
	} {
		delivered, seq, ok := ackNumbers(reply)
		md, err := (&natsgo.Msg{Reply: reply, Sub: &natsgo.Subscription{}}).Metadata()
		if ok != (err == nil) {
			t.Errorf("%q: read %v, nats.go's error %v", reply, ok, err)
			continue
		}
		if ok && (delivered != md.NumDelivered || seq != md.Sequence.Stream) {
			t.Errorf("%q: delivered %d, sequence %d; nats.go reads %d, %d", reply, delivered, seq, md.NumDelivered, md.Sequence.Stream)
		}
	}
}
