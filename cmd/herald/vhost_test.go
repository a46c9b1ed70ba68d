package main

import (
	"net/url"
	"os/exec"
	"testing"

	"github.com/heraldhq/herald/internal/testkit"
)

// testVhost creates a RabbitMQ virtual host of the test's own on the
// broker of HERALD_TEST_AMQP_URL (with rabbitmqctl, which needs a local
// broker) and returns that URL pointed at it; the virtual host, and every
// queue in it, is deleted when the test ends. It is how a test runs
// herald serve, whose audit log always uses the queue audit-log, beside
// other tests on one broker.
func testVhost(t *testing.T) string {
	t.Helper()
	base, err := url.Parse(testBrokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		testkit.SkipUnless(t, "PATH", "rabbitmqctl (on the machine of HERALD_TEST_AMQP_URL's broker) is needed to give the test a virtual host of its own")
	}
	vhost := "herald-test-" + cliRun()
	ctlRun := func(args ...string) error {
		out, err := exec.Command(ctl, append([]string{"-q"}, args...)...).CombinedOutput()
		if err != nil {
			t.Logf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
		return err
	}
	if err := ctlRun("add_vhost", vhost); err != nil {
		t.Fatal("rabbitmqctl add_vhost failed")
	}
	t.Cleanup(func() { ctlRun("delete_vhost", vhost) })
	if err := ctlRun("set_permissions", "-p", vhost, base.User.Username(), ".*", ".*", ".*"); err != nil {
		t.Fatal("rabbitmqctl set_permissions failed")
	}
	base.Path = "/" + vhost
	base.RawPath = ""
	return base.String()
}
