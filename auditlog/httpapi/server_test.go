package httpapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveWith serves the env's API again with NewServer and timeouts t,
// and returns its address.
func serveWith(t *testing.T, h http.Handler, to Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, to)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// Several hundred clients that never finish a request, trickle a body or
// keep a connection idle neither stop /healthcheck answering within
// 100 ms nor keep their connections: the server's timeouts close each.
func TestSlowAndIdleConnectionsAreClosed(t *testing.T) {
	e := newEnv(t)
	to := Timeouts{ReadHeader: 500 * time.Millisecond, Read: time.Second, Write: 2 * time.Second, Idle: time.Second}
	addr := serveWith(t, e.handler, to)

	const perKind = 100
	var conns []net.Conn
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	// Headers never finished.
	for range perKind {
		fmt.Fprintf(dial(), "GET /logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin\r\n")
	}
	// A body announced and never sent.
	for range perKind {
		fmt.Fprintf(dial(), "POST /logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"headers\":")
	}
	// Keep-alive connections left idle after one request.
	for range perKind {
		c := dial()
		fmt.Fprintf(c, "GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var slowest time.Duration
	for range 10 {
		start := time.Now()
		resp, err := client.Get("http://" + addr + "/healthcheck")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slowest = max(slowest, time.Since(start))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthcheck: %d", resp.StatusCode)
		}
	}
	t.Logf("slowest of 10 healthchecks beside %d hostile connections: %v", len(conns), slowest)
	if slowest > 100*time.Millisecond {
		t.Errorf("a healthcheck took %v beside %d hostile connections, want under 100ms", slowest, len(conns))
	}

	// Every hostile connection is closed by the server: reading it ends
	// (after whatever answer the server gave) well before our deadline.
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.Copy(io.Discard, c)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if open > 0 {
		t.Errorf("%d of %d hostile connections still open after 10s (timeouts %+v)", open, len(conns), to)
	}
}

// A body over the limit is answered 413, and the client reads it: by its
// Content-Length before reading (even with no body sent), or when the
// limit is reached for a chunked body.
func TestOversizedBodyGetsA413TheClientReads(t *testing.T) {
	e := newEnv(t)
	addr := serveWith(t, e.handler, DefaultTimeouts)
	big := bytes.Repeat([]byte("x"), 40<<20)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(big)
		if chunked {
			body = io.MultiReader(strings.NewReader(`{"headers":{"name":"a.b"},"payload":{"x":"`), bytes.NewReader(big))
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/logs", body)
		req.Header.Set("Authorization", "Bearer admin")
		if chunked {
			req.ContentLength = -1
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("chunked %v: %v", chunked, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(b, []byte("larger than")) {
			t.Errorf("40 MiB, chunked %v: %d %s, want 413", chunked, resp.StatusCode, b)
		}
	}

	// By its Content-Length alone: a request that declares 40 MiB and
	// sends no body is answered 413 without the server waiting for the
	// body, which would come only at its read timeout (DefaultTimeouts,
	// 30 s). The deadline only bounds a server that never answers.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /logs HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer admin\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(big))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a request declaring 40 MiB, its body not sent: no answer (%v), want 413 before the body", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(b, []byte("larger than")) {
		t.Errorf("a request declaring 40 MiB, its body not sent: %d %s, want 413", resp.StatusCode, b)
	}
}
