package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	natsgo "github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/bus/amqp"
	"github.com/heraldhq/herald/bus/driver"
	natsbus "github.com/heraldhq/herald/bus/nats"
)

// openTransport connects to the broker at rawURL, choosing the transport by
// the URL's scheme: amqp:// and amqps:// are RabbitMQ, nats:// is NATS
// JetStream. A URL herald cannot use is a usage error naming --broker.
func openTransport(ctx context.Context, rawURL string, log *slog.Logger) (driver.Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, usagef("--broker %q is not a broker URL: want amqp://user:pass@host:5672/ or nats://host:4222 (env %s)", rawURL, envBrokerURL)
	}
	switch strings.ToLower(u.Scheme) {
	case "amqp", "amqps":
		t, err := amqp.Dial(ctx, rawURL, amqp.WithLogger(log), amqp.WithConnectionName(connectionName()))
		if err != nil {
			return nil, err
		}
		return t, nil
	case "nats":
		t, err := natsbus.Dial(ctx, rawURL, natsbus.WithLogger(log), natsbus.WithName(connectionName()))
		if err != nil {
			return nil, err
		}
		return t, nil
	default:
		return nil, usagef("--broker %q: unknown scheme %q; want amqp://, amqps:// or nats:// (env %s)", u.Redacted(), u.Scheme, envBrokerURL)
	}
}

// connectionName is how the broker lists this process's connection
// (RabbitMQ's management UI, rabbitmqctl list_connections).
func connectionName() string {
	name := "herald"
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		name += " " + os.Args[1]
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (%s, pid %d)", name, host, os.Getpid())
}

// dialBroker is openTransport for the commands a person runs against a
// broker (publish, tail): it gives up after timeout and says which flag to
// change when no broker answers.
func dialBroker(ctx context.Context, rawURL string, timeout time.Duration, log *slog.Logger) (driver.Transport, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, err := openTransport(ctx, rawURL, log)
	if err != nil {
		return nil, brokerError(redactURL(rawURL), err)
	}
	return t, nil
}

// brokerError says what went wrong when connecting to the broker at url
// failed, and which flag to change: no broker answers (nothing listens, a
// name that does not resolve, a timeout), or one answers and refuses (a
// wrong user or password, a missing virtual host), or something answers
// that does not speak the URL's protocol. A usage error (a URL herald
// cannot use) is returned as it is.
func brokerError(url string, err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	var ae *amqp091.Error
	if errors.As(err, &ae) {
		switch {
		case ae.Code == amqp091.AccessRefused || errors.Is(err, amqp091.ErrCredentials) || errors.Is(err, amqp091.ErrSASL):
			return fmt.Errorf("the broker at %s refused the user name or password of --broker (amqp://USER:PASSWORD@host/, env %s): %w", url, envBrokerURL, err)
		case errors.Is(err, amqp091.ErrVhost) || ae.Code == amqp091.NotAllowed && strings.Contains(ae.Reason, "vhost"):
			return fmt.Errorf("the broker at %s has no virtual host %q that this user may use (the path of --broker, %%2F for \"/\"): %w", url, vhostOf(url), err)
		case ae.Code == amqp091.FrameError || ae.Code == amqp091.SyntaxError || ae.Code == amqp091.UnexpectedFrame:
			return fmt.Errorf("something answers at %s, but not as a RabbitMQ broker (a NATS port? then --broker nats://…): %w", url, err)
		}
	}
	// Which error amqp091 reports for a peer that is not RabbitMQ depends
	// on when that peer hangs up (a frame error, or the connection closed
	// mid-handshake), so ask the port itself: a NATS server greets first.
	if !noAnswer(err) && natsGreets(url) {
		return fmt.Errorf("something answers at %s, but not as a RabbitMQ broker: a NATS server (then --broker nats://…): %w", url, err)
	}
	if noAnswer(err) {
		return fmt.Errorf("no broker answers at %s (start herald serve, or point --broker or %s at one): %w", url, envBrokerURL, err)
	}
	return fmt.Errorf("connect to the broker at %s (check --broker or %s): %w", url, envBrokerURL, err)
}

// noAnswer reports whether err means that nothing answered: nothing
// listens, the host is unknown or unreachable, or the wait ran out.
func noAnswer(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, natsgo.ErrNoServers), errors.Is(err, natsgo.ErrTimeout):
		return true
	case errors.As(err, &dnsErr):
		return true
	case errors.As(err, &opErr):
		return opErr.Op == "dial"
	}
	return false
}

// natsGreets reports whether the host:port of an amqp:// URL answers with
// a NATS server's INFO greeting within a second.
func natsGreets(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "amqp" && u.Scheme != "amqps") {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	greeting := make([]byte, 5)
	if _, err := io.ReadFull(conn, greeting); err != nil {
		return false
	}
	return string(greeting) == "INFO "
}

// vhostOf is the virtual host an amqp:// URL names ("/" when it has no
// path).
func vhostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" || u.Path == "/" {
		return "/"
	}
	v, err := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/"))
	if err != nil {
		return u.Path
	}
	return v
}

// embeddedServerName is what herald's embedded NATS server calls itself.
const embeddedServerName = "herald"

// noteDefaultBroker says so when a command given no broker (no --broker,
// no HERALD_BROKER_URL) reached a NATS server that is not herald's: its
// events go to whatever NATS holds the standard port, which is rarely what
// was meant.
func noteDefaultBroker(w io.Writer, t driver.Transport, url string) {
	n, ok := t.(interface{ ServerName() string })
	if !ok || n.ServerName() == embeddedServerName {
		return
	}
	fmt.Fprintf(w, "note: no --broker given, so this uses %s, where a NATS server that is not herald's answers (server name %q); pass --broker or set %s to choose the broker\n",
		url, n.ServerName(), envBrokerURL)
}

// addBrokerFlag adds --broker to a command that talks to a broker: env
// HERALD_BROKER_URL, else the local herald's default.
func addBrokerFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "broker", envOr(envBrokerURL, defaultBrokerURL), "broker URL, amqp:// or nats:// (env "+envBrokerURL+")")
}

// brokerDefaulted reports whether cmd talks to the default broker: no
// --broker and no HERALD_BROKER_URL.
func brokerDefaulted(cmd *cobra.Command) bool {
	return !cmd.Flags().Changed("broker") && os.Getenv(envBrokerURL) == ""
}

// closeBus closes b within d even when ctx, the command's, is done
// (Ctrl-C): what was handed to the broker still gets its confirm, and a
// broker that went away does not hold the command.
func closeBus(ctx context.Context, b interface{ Close(context.Context) error }, d time.Duration) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	_ = b.Close(cctx)
}
