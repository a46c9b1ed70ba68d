// Command herald runs the Open Integration Hub event system: the embedded
// broker and audit log (serve), and the tools a person uses with it
// (publish, tail, logs, catalog, simulate).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the herald command line and returns the exit code: 0 ok,
// 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "herald:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "herald",
		Short: "The Open Integration Hub service-event system",
		Long: `herald carries Open Integration Hub service events: the event bus (RabbitMQ,
NATS JetStream or in process), the catalogue of every event, and the audit log.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what herald version prints.
		Version: buildVersion(),
	}
	root.SetVersionTemplate(versionLine())
	// Flag parsing errors are usage errors (exit code 2).
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		newServeCmd(),
		newVersionCmd(),
		newCatalogCmd(),
		newSimulateCmd(),
		newLogsCmd(),
		newPublishCmd(),
		newTailCmd(),
		newBrokerCmd(),
		newVerifyCmd(),
		newDLQCmd(),
		newStatusCmd(),
	)
	markUsageErrors(root)
	return root
}

// markUsageErrors makes argument errors (a missing or extra argument, an
// unknown subcommand) usage errors, exit code 2, like flag errors.
func markUsageErrors(cmd *cobra.Command) {
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return &usageError{err}
			}
			return nil
		}
	} else if cmd.HasSubCommands() && !cmd.Runnable() {
		// A command that only groups others prints its help, and an
		// unknown word after it is a usage error.
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, a []string) error {
			if len(a) > 0 {
				return usagef("unknown command %q for %q (see %s --help)", a[0], c.CommandPath(), c.CommandPath())
			}
			return c.Help()
		}
	}
	for _, c := range cmd.Commands() {
		markUsageErrors(c)
	}
}

// usageError marks an error in how a command was called (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usage error.
func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }
