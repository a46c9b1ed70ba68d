package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

// builtHerald is the herald binary the tests that run real processes
// share: built once per test run, removed by TestMain.
var builtHerald struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := testkit.Main(m)
	if builtHerald.dir != "" {
		os.RemoveAll(builtHerald.dir)
	}
	os.Exit(code)
}

// heraldBinary returns the path of the herald binary, building it on the
// first call.
func heraldBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the herald binary")
	}
	b := &builtHerald
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "herald-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "herald")
		b.out, b.err = exec.Command("go", "build", "-o", b.path, ".").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build: %v\n%s", b.err, b.out)
	}
	return b.path
}

// process is a herald command run as a process of its own.
type process struct {
	cmd    *exec.Cmd
	stderr *testkit.Buffer
	lines  chan string // standard output, a line at a time
	done   chan struct{}
}

// startProcess runs the herald binary with args and env (added to an
// environment without any HERALD_ variable of the test's own), killed when
// the test ends.
func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(heraldBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &testkit.Buffer{}, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody reads any more
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// cleanEnv is the test's environment without herald's variables, so a
// process is configured by what the test gives it alone.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HERALD_") || strings.HasPrefix(kv, "PORT=") || strings.HasPrefix(kv, "INTROSPECT_") || strings.HasPrefix(kv, "IAM_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitLine returns the first line of standard output for which match
// returns true, failing the test after timeout or if the process ends.
func (p *process) waitLine(t *testing.T, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.lines:
			if match(l) {
				return l
			}
		case <-p.done:
			t.Fatalf("%s: the process ended first: %s", what, p.stderr.String())
		case <-deadline:
			t.Fatalf("%s: not within %v: %s", what, timeout, p.stderr.String())
		}
	}
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM and waits for it.
func (p *process) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Errorf("the process did not stop within 60s of SIGTERM: %s", p.stderr.String())
		p.kill()
	}
}
