package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

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

// brokerError says which flag to change when no broker answers; a usage
// error (a URL herald cannot use) is returned as it is.
func brokerError(url string, err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("no broker answers at %s (start herald serve, or point --broker or %s at one): %w", url, envBrokerURL, err)
}

// closeBus closes b within d even when ctx, the command's, is done
// (Ctrl-C): what was handed to the broker still gets its confirm, and a
// broker that went away does not hold the command.
func closeBus(ctx context.Context, b interface{ Close(context.Context) error }, d time.Duration) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	_ = b.Close(cctx)
}
