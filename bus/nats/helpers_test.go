package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nuid"

	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/natsserver"
)

// Environment variables of the tests.
const (
	envTestNATSURL = "HERALD_TEST_NATS_URL"
	testTimeout    = 30 * time.Second
)

// externalURL returns the external NATS server to test against, skipping
// the test when none is configured (failing it when services are
// required).
func externalURL(t testing.TB) string {
	t.Helper()
	return testkit.Need(t, envTestNATSURL, "nats://127.0.0.1:4222")
}

// startServer starts an embedded server on a random port with a fresh
// store, shut down when the test ends.
func startServer(t testing.TB) *natsserver.Server {
	t.Helper()
	return startServerIn(t, t.TempDir(), natsserver.RandomPort)
}

func startServerIn(t testing.TB, dir string, port int) *natsserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := natsserver.Run(ctx, natsserver.Config{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatalf("start embedded server: %v", err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

func shutdown(t testing.TB, s *natsserver.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shut down embedded server: %v", err)
	}
}

// isolated returns options that give a test streams and subjects of its
// own, removed when the test ends, so tests can share an external server
// with each other and with anything else on it.
func isolated(t testing.TB, url string) []Option {
	t.Helper()
	id := strings.ToLower(nuid.Next())
	events, dead := "HERALD_TEST_"+id, "HERALD_TEST_DEAD_"+id
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		tr, err := Dial(ctx, url, WithStream(events, "herald.test."+id+".events"), WithDeadLetterStream(dead, "herald.test."+id+".dead"))
		if err != nil {
			t.Logf("clean up streams of %s: %v", id, err)
			return
		}
		defer tr.Close(ctx)
		for _, s := range []string{events, dead} {
			if err := tr.js.DeleteStream(ctx, s); err != nil {
				t.Logf("delete stream %s: %v", s, err)
			}
		}
	})
	return []Option{
		WithStream(events, "herald.test."+id+".events"),
		WithDeadLetterStream(dead, "herald.test."+id+".dead"),
	}
}

// dial connects a transport, closed when the test ends.
func dial(t testing.TB, url string, opts ...Option) *Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tr, err := Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			t.Errorf("close transport: %v", err)
		}
	})
	return tr
}

// proxy is a TCP proxy to a NATS server that can cut every connection
// through it, for testing reconnects against a server the test cannot
// restart or tell to drop clients.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's address as a NATS URL.
func (p *proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Add(2)
		go pipe(c, s)
		go pipe(s, c)
	}
}

// cut closes every connection through the proxy; new ones are accepted.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	return len(p.conns) / 2
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// hostPort returns the host:port of a nats:// URL.
func hostPort(url string) (string, error) {
	u := strings.TrimPrefix(strings.TrimSpace(strings.Split(url, ",")[0]), "nats://")
	if i := strings.LastIndex(u, "@"); i >= 0 {
		u = u[i+1:]
	}
	if _, _, err := net.SplitHostPort(u); err != nil {
		return "", fmt.Errorf("NATS URL %q: %w", url, err)
	}
	return u, nil
}

// dropClients closes the connections of the embedded server's clients
// named name (all clients when name is empty), without stopping it.
func dropClients(s *natsserver.Server, name string) (int, error) {
	ns := s.NATSServer()
	connz, err := ns.Connz(&natsd.ConnzOptions{Limit: 1 << 16})
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, c := range connz.Conns {
		if name != "" && c.Name != name {
			continue
		}
		if err := ns.DisconnectClientByID(c.Cid); err != nil {
			errs = append(errs, err)
		}
		n++
	}
	return n, errors.Join(errs...)
}
