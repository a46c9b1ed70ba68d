package nats

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus/bustest"
	"github.com/heraldhq/herald/bus/driver"
)

// reconnectName names the connections of the suite's reconnect case. Its
// Disconnect breaks only those: the suite runs its cases in parallel, and
// the cases that count exact deliveries are not about reconnecting (a
// server restart under all of them is TestPublishWaitsForServerRestart's
// and TestFaultServerRestartDuringPublishes' business).
const reconnectName = "herald-test-reconnect"

func connName(t testing.TB) string {
	if strings.Contains(t.Name(), "Reconnect") {
		return reconnectName
	}
	return "herald-test"
}

// connOptions names a test's connection, and gives the reconnect case a
// short AckWait: deliveries the server sent into the broken connection
// come back only once their AckWait has passed.
func connOptions(t testing.TB) []Option {
	if name := connName(t); name == reconnectName {
		return []Option{WithName(name), WithAckWait(3 * time.Second)}
	}
	return []Option{WithName(connName(t))}
}

// TestConformanceEmbedded runs the bus conformance suite against the
// embedded server; the reconnect case has the server close its clients'
// connections.
func TestConformanceEmbedded(t *testing.T) {
	srv := startServer(t)
	bustest.Run(t, bustest.Harness{
		NewTransport: func(tb testing.TB) driver.Transport {
			return dial(tb, srv.ClientURL(), connOptions(tb)...)
		},
		Disconnect: func(tb testing.TB) {
			n, err := dropClients(srv, reconnectName)
			if err != nil || n == 0 {
				tb.Fatalf("disconnect: closed %d connections: %v", n, err)
			}
			tb.Logf("closed %d client connections", n)
		},
	})
}

// TestConformanceExternal runs the suite against the server at
// HERALD_TEST_NATS_URL, on streams of its own. The reconnect case's
// transports connect through a TCP proxy that cuts their connections,
// since the test cannot make an external server drop clients.
func TestConformanceExternal(t *testing.T) {
	url := externalURL(t)
	target, err := hostPort(url)
	if err != nil {
		t.Fatal(err)
	}
	opts := isolated(t, url)
	px := newProxy(t, target)
	bustest.Run(t, bustest.Harness{
		NewTransport: func(tb testing.TB) driver.Transport {
			u := url
			if connName(tb) == reconnectName {
				u = px.URL()
			}
			return dial(tb, u, append(slices.Clone(opts), connOptions(tb)...)...)
		},
		Disconnect: func(tb testing.TB) {
			n := px.cut()
			if n == 0 {
				tb.Fatal("disconnect: no connection through the proxy")
			}
			tb.Logf("cut %d connections", n)
		},
	})
}
