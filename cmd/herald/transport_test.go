package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	natsbus "github.com/heraldhq/herald/bus/nats"
)

// TestBrokerErrorsSayWhatIsWrong connects publish to brokers that answer
// and refuse, to something that is not a RabbitMQ, and to nothing: each
// gets its own explanation, and only nothing is "no broker answers".
func TestBrokerErrorsSayWhatIsWrong(t *testing.T) {
	rabbit, err := url.Parse(testBrokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := *rabbit
	wrongPassword.User = url.UserPassword(rabbit.User.Username(), "not-the-password")
	noVhost := *rabbit
	noVhost.Path = "/herald-no-such-vhost"
	nats := startBroker(t, "--listen", freeAddr(t), "--data", t.TempDir())
	cases := []struct {
		name, broker, want string
	}{
		{"wrong password", wrongPassword.String(), "refused the user name or password"},
		{"missing virtual host", noVhost.String(), `no virtual host "herald-no-such-vhost"`},
		{"amqp to a NATS port", "amqp://guest:guest@" + strings.TrimPrefix(nats, "nats://") + "/", "not as a RabbitMQ broker"},
		{"nothing listens", unreachableBroker, "no broker answers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"publish", "iam.token.modified", "--payload", `{"id":"t1"}`, "--timeout", "5s", "--broker", c.broker}, &stdout, &stderr)
			msg := stderr.String()
			if code != 1 || !strings.Contains(msg, c.want) {
				t.Errorf("exit %d, stderr %q; want 1 saying %q", code, msg, c.want)
			}
			if c.want != "no broker answers" && strings.Contains(msg, "no broker answers") {
				t.Errorf("a broker that answered is reported as none: %q", msg)
			}
			if strings.Contains(msg, "not-the-password") {
				t.Errorf("the password is in the message: %q", msg)
			}
		})
	}
}

// TestADefaultBrokerThatIsNotHeraldsIsNamed: a command given no broker
// that reaches a NATS server other than herald's says so; herald's own
// broker is used without a word.
func TestADefaultBrokerThatIsNotHeraldsIsNamed(t *testing.T) {
	foreign, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, ServerName: "someone-elses", JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go foreign.Start()
	t.Cleanup(foreign.Shutdown)
	if !foreign.ReadyForConnections(10 * time.Second) {
		t.Fatal("the foreign NATS server did not start")
	}
	herald := startBroker(t, "--listen", freeAddr(t), "--data", t.TempDir())
	for _, c := range []struct {
		url  string
		note bool
	}{
		{foreign.ClientURL(), true},
		{herald, false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tr, err := natsbus.Dial(ctx, c.url)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var note bytes.Buffer
		noteDefaultBroker(&note, tr, c.url)
		tr.Close(context.Background())
		if got := strings.Contains(note.String(), "not herald's") && strings.Contains(note.String(), "someone-elses") && strings.Contains(note.String(), "--broker"); got != c.note {
			t.Errorf("broker %s: note %q; want a note naming it and --broker: %v", c.url, note.String(), c.note)
		}
	}
}
