// Package natsserver runs an embedded NATS server with JetStream in this
// process: the broker herald serve and herald broker start when no other
// is given, so that herald runs with nothing installed.
//
// It is a package of its own so that a program that only publishes and
// subscribes through bus/nats never links the server: nats.go keeps the
// server out of its module for the same reason.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultHost and DefaultPort are where herald's embedded server listens
// unless told otherwise: NATS's own port, on the loopback interface only.
const (
	DefaultHost = "127.0.0.1"
	DefaultPort = 4222
	// RandomPort asks for any free port (Config.Port), as 0 does.
	RandomPort = -1
)

// embeddedMaxPayload is the largest message the embedded server accepts:
// room for an event of event.DefaultMaxSize (1 MiB, which is also NATS's
// default max_payload) plus its headers, up to NATS's recommended limit.
const embeddedMaxPayload = 8 << 20

// Config configures the embedded NATS server.
type Config struct {
	// StoreDir is the folder JetStream keeps its streams in (required). A
	// server started again on the same folder has every stream, message and
	// durable consumer it had.
	StoreDir string
	// Host is the interface to listen on (default 127.0.0.1).
	Host string
	// Port is the port to listen on; 0 or RandomPort picks a free one
	// (Config and ClientURL then tell which). herald's commands default
	// to DefaultPort.
	Port int
	// DontListen runs the server without a network listener: only this
	// process reaches it, through Server.InProcessConn (bus/nats's
	// WithInProcessServer).
	DontListen bool
	// Logger receives the server's log (notices as Info, warnings, errors);
	// nil discards it.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept connections
	// (default 30s; Run's ctx bounds it too). Recovering a large store
	// can take a while.
	ReadyTimeout time.Duration
}

// Server is an embedded NATS server with JetStream, running in this
// process.
type Server struct {
	ns  *server.Server
	cfg Config
}

// ErrAddressInUse is wrapped by Run's error when something else
// already listens on the address.
var ErrAddressInUse = errors.New("address already in use")

// Run starts a NATS server with JetStream in this process, storing
// its data in cfg.StoreDir, and returns once it accepts connections. If the
// address is taken it fails at once with an error that wraps
// ErrAddressInUse and names the address.
func Run(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded NATS server: a store folder is required")
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.Port == 0 {
		cfg.Port = RandomPort
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	port := cfg.Port
	if port == RandomPort {
		port = server.RANDOM_PORT
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	if !cfg.DontListen && cfg.Port != RandomPort {
		// The server would only log a failed listen and never become ready;
		// checking first turns a taken port into an immediate error.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if isAddrInUse(err) {
				return nil, fmt.Errorf("embedded NATS server: listen on %s: %w", addr, ErrAddressInUse)
			}
			return nil, fmt.Errorf("embedded NATS server: listen on %s: %w", addr, err)
		}
		l.Close()
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded NATS server: create store folder: %w", err)
	}
	opts := &server.Options{
		ServerName: "herald",
		Host:       cfg.Host,
		Port:       port,
		DontListen: cfg.DontListen,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: embeddedMaxPayload,
		// herald owns the process: the server must not install signal
		// handlers of its own (they would exit on SIGINT before herald has
		// closed its consumers).
		NoSigs: true,
		// No HTTP monitoring or cluster ports: one listener only.
		HTTPPort: 0,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	lg := &serverLogger{log: cfg.Logger}
	if lg.log == nil {
		lg.log = slog.New(slog.DiscardHandler)
	}
	ns.SetLoggerV2(lg, false, false, false)
	go ns.Start()

	deadline := time.Now().Add(cfg.ReadyTimeout)
	for {
		if ns.ReadyForConnections(50 * time.Millisecond) {
			break
		}
		if err := lg.fatal(); err != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			if isAddrInUse(err) {
				return nil, fmt.Errorf("embedded NATS server: listen on %s: %w", addr, ErrAddressInUse)
			}
			return nil, fmt.Errorf("embedded NATS server on %s: %w", addr, err)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			ns.Shutdown()
			ns.WaitForShutdown()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("embedded NATS server on %s: waiting until ready: %w", addr, ctx.Err())
			}
			return nil, fmt.Errorf("embedded NATS server on %s: not ready after %s", addr, cfg.ReadyTimeout)
		}
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS server on %s: JetStream did not start (store %s)", addr, cfg.StoreDir)
	}
	if cfg.Port == RandomPort && !cfg.DontListen {
		if a, ok := ns.Addr().(*net.TCPAddr); ok {
			cfg.Port = a.Port
		}
	}
	return &Server{ns: ns, cfg: cfg}, nil
}

// ClientURL returns the URL clients connect to, such as
// nats://127.0.0.1:4222 (empty for a server that does not listen).
func (s *Server) ClientURL() string {
	if s.cfg.DontListen {
		return ""
	}
	return "nats://" + net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
}

// Config returns the configuration the server runs with; a RandomPort is
// replaced by the port it got, so the config starts a server on the same
// address and folder again.
func (s *Server) Config() Config { return s.cfg }

// InProcessConn returns a connection to the server that does not go through
// the network; it makes Server a nats.InProcessConnProvider.
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }

// NATSServer returns the nats-server instance, for what herald does not
// wrap (monitoring, dropping a client's connection in a test).
func (s *Server) NATSServer() *server.Server { return s.ns }

// Shutdown stops the server: clients are disconnected, JetStream flushes
// and closes its store. It returns once the server has stopped, or with
// ctx's error if that takes longer (the server then finishes stopping in
// the background).
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded NATS server: shutdown: %w", ctx.Err())
	}
}

// isAddrInUse reports a taken address, from the listen error itself or from
// the text of the server's fatal log line.
func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// serverLogger passes the server's log to slog and remembers a fatal
// error, which the server reports only through its logger.
type serverLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	err error
}

func (l *serverLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Info(fmt.Sprintf(format, v...), "component", "nats-server")
}

func (l *serverLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "component", "nats-server")
}

func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}

// Fatalf records the error instead of exiting, as the server's own logger
// would: Run returns it.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "component", "nats-server")
	l.mu.Lock()
	if l.err == nil {
		l.err = errors.New(msg)
	}
	l.mu.Unlock()
}

func (l *serverLogger) Debugf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "nats-server")
}

func (l *serverLogger) Tracef(format string, v ...any) {}
