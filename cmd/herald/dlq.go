package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
)

// deadLetterQueue is what herald dlq needs of a transport.
type deadLetterQueue interface {
	driver.DeadLetterLister
	driver.DeadLetterReplayer
	driver.DeadLetterPurger
}

type dlqOptions struct {
	service string
	broker  string
	timeout time.Duration
	output  string

	brokerDefault bool
}

func newDLQCmd() *cobra.Command {
	var o dlqOptions
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and purge dead letters",
		Long: `dlq works on the dead letters of a service's queue (default: the audit log's,
audit-log): the events its handlers gave up on after their last attempt, kept
by the broker with the error and the attempt count.

  list           every dead letter: id, event, attempts, first failure, error
  show ID        one dead letter in full, its event included
  replay ID…     sends them back to the service's queue (and to no other), as a
                 first attempt; --all replays every one
  purge [ID…]    deletes them (all when no id is given), after asking; --yes
                 does not ask

On RabbitMQ the dead letters are the queue <service>.dead; on NATS, the
HERALD_DEAD stream. Ids are the broker's: list shows them.`,
		Example: `  herald dlq list
  herald dlq list --service flow-repository --output json
  herald dlq show 0195f2a1-8c3e-7a11-9d40-5f1c0c6e2a9b
  herald dlq replay --all
  herald dlq purge --yes --broker amqp://guest:guest@localhost:5672/`,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.service, "service", auditlog.QueueName, "the service whose queue's dead letters these are")
	f.StringVar(&o.broker, "broker", envOr(envBrokerURL, defaultBrokerURL), "broker URL, amqp:// or nats:// (env "+envBrokerURL+")")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the broker")
	cmd.PersistentPreRun = func(c *cobra.Command, _ []string) { o.brokerDefault = brokerDefaulted(c) }
	cmd.AddCommand(newDLQListCmd(&o), newDLQShowCmd(&o), newDLQReplayCmd(&o), newDLQPurgeCmd(&o))
	return cmd
}

// open connects to --broker and returns its dead letters' operations.
func (o *dlqOptions) open(ctx context.Context, stderr io.Writer) (deadLetterQueue, func(), error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t, err := dialBroker(ctx, o.broker, o.timeout, log)
	if err != nil {
		return nil, nil, err
	}
	closeT := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = t.Close(cctx)
	}
	if o.brokerDefault {
		noteDefaultBroker(stderr, t, o.broker)
	}
	q, ok := t.(deadLetterQueue)
	if !ok {
		closeT()
		return nil, nil, fmt.Errorf("the broker at %s does not give herald its dead letters", redactURL(o.broker))
	}
	return q, closeT, nil
}

func (o *dlqOptions) checkOutput() error {
	if o.output != "text" && o.output != "json" {
		return usagef("--output %q: want text or json", o.output)
	}
	return nil
}

// deadLetters checks --output and reads the service's dead letters, for
// list and show.
func (o *dlqOptions) deadLetters(cmd *cobra.Command) ([]driver.DeadLetter, error) {
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	q, done, err := o.open(ctx, cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	defer done()
	dls, err := q.DeadLetters(ctx, o.service)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: %w", o.service, err)
	}
	return dls, nil
}

func newDLQListCmd(o *dlqOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List a queue's dead letters, oldest first",
		Example: "  herald dlq list\n  herald dlq list --service flow-repository --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dls, err := o.deadLetters(cmd)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeDeadLettersJSON(cmd.OutOrStdout(), dls, false)
			}
			return writeDeadLetterTable(cmd.OutOrStdout(), o.service, dls)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newDLQShowCmd(o *dlqOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   "Show one dead letter in full",
		Example: "  herald dlq show 0195f2a1-8c3e-7a11-9d40-5f1c0c6e2a9b\n  herald dlq show 17 --service flow-repository --output json",
		Args:    exactlyOneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			dls, err := o.deadLetters(cmd)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(dls, func(dl driver.DeadLetter) bool { return dl.ID == args[0] })
			if i < 0 {
				return fmt.Errorf("no dead letter %s in %s's queue (herald dlq list shows them)", args[0], o.service)
			}
			if o.output == "json" {
				return writeDeadLettersJSON(cmd.OutOrStdout(), dls[i:i+1], true)
			}
			return writeDeadLetter(cmd.OutOrStdout(), dls[i])
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func exactlyOneID(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("show takes one dead letter ID (herald dlq list shows them), got %d arguments", len(args))
	}
	return nil
}

func newDLQReplayCmd(o *dlqOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "replay [ID…|--all]",
		Short: "Send dead letters back to their service's queue",
		Long: `replay sends the dead letters named (or, with --all, every one) back to the
service's queue, and to no other service's, as a first attempt: the service
handles each again with its full number of retries. Each one is removed from
the dead letters once the broker has taken it back, and each replay is logged.`,
		Example: "  herald dlq replay 0195f2a1-8c3e-7a11-9d40-5f1c0c6e2a9b\n  herald dlq replay --all --service flow-repository",
		RunE: func(cmd *cobra.Command, ids []string) error {
			switch {
			case all && len(ids) > 0:
				return usagef("replay takes dead letter IDs or --all, not both")
			case !all && len(ids) == 0:
				return usagef("replay needs dead letter IDs (herald dlq list shows them), or --all")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			q, done, err := o.open(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer done()
			replayed, err := q.ReplayDeadLetters(ctx, o.service, ids)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			for _, dl := range replayed {
				log.Info("replayed dead letter", "queue", o.service, "id", dl.ID, "event", dl.Name, "eventId", eventIDOf(dl.Body), "attempts", dl.Attempts, "error", dl.Error)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %s to %s's queue\n", plural(len(replayed), "dead letter", "dead letters"), o.service)
			if err != nil {
				return fmt.Errorf("replay dead letters of %s: %w", o.service, err)
			}
			return missingIDs(ids, replayed, o.service)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter of the queue")
	return cmd
}

func newDLQPurgeCmd(o *dlqOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge [ID…]",
		Short: "Delete dead letters",
		Long: `purge deletes the dead letters named, or every one of the queue when no ID is
given. It asks first on a terminal; --yes does not ask (and is needed when
standard input is not a terminal).`,
		Example: "  herald dlq purge\n  herald dlq purge 17 18 --yes --service flow-repository",
		RunE: func(cmd *cobra.Command, ids []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			q, done, err := o.open(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer done()
			if !yes {
				what := fmt.Sprintf("every dead letter of %s's queue", o.service)
				if len(ids) > 0 {
					what = fmt.Sprintf("%s of %s's queue", plural(len(ids), "dead letter", "dead letters"), o.service)
				}
				ok, err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), "Delete "+what+"?")
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("nothing deleted")
				}
			}
			n, err := q.PurgeDeadLetters(ctx, o.service, ids)
			if err != nil {
				return fmt.Errorf("purge dead letters of %s: %w", o.service, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s of %s's queue\n", plural(n, "dead letter", "dead letters"), o.service)
			if len(ids) > n {
				return fmt.Errorf("%d of the ids named no dead letter in %s's queue", len(ids)-n, o.service)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask before deleting")
	return cmd
}

// confirm asks question on a terminal and reads y or yes. Off a terminal
// there is nobody to ask: that is a usage error naming --yes.
func confirm(stdin io.Reader, stderr io.Writer, question string) (bool, error) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, usagef("purge deletes for good: pass --yes (standard input is not a terminal to ask on)")
	}
	fmt.Fprintf(stderr, "%s [y/N] ", question)
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes", nil
}

// missingIDs names the ids that no replayed dead letter had.
func missingIDs(ids []string, done []driver.DeadLetter, service string) error {
	var missing []string
	for _, id := range ids {
		if !slices.ContainsFunc(done, func(dl driver.DeadLetter) bool { return dl.ID == id }) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no dead letter %s in %s's queue (herald dlq list shows them)", strings.Join(missing, ", "), service)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// eventIDOf is the id of the event a dead letter holds ("" when it holds
// none that decodes).
func eventIDOf(body []byte) string {
	ev, err := event.Decode(body)
	if err != nil {
		return ""
	}
	return ev.Headers.ID
}

func dlqTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// writeDeadLetterTable prints one line per dead letter, aligned.
func writeDeadLetterTable(w io.Writer, service string, dls []driver.DeadLetter) error {
	if len(dls) == 0 {
		_, err := fmt.Fprintf(w, "no dead letters in %s's queue\n", service)
		return err
	}
	rows := [][5]string{{"ID", "EVENT", "ATTEMPTS", "FIRST FAILURE", "ERROR"}}
	for _, dl := range dls {
		rows = append(rows, [5]string{dl.ID, orDash(dl.Name), fmt.Sprint(dl.Attempts), dlqTime(dl.FirstFailure), truncate(orDash(oneLine(dl.Error)), 80)})
	}
	var widths [4]int
	for _, r := range rows {
		for i := range widths {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i := range widths {
			b.WriteString(pad(r[i], widths[i]) + "  ")
		}
		b.WriteString(r[4] + "\n")
	}
	fmt.Fprintf(&b, "%s in %s's queue\n", plural(len(dls), "dead letter", "dead letters"), service)
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeDeadLetter prints one dead letter in full.
func writeDeadLetter(w io.Writer, dl driver.DeadLetter) error {
	var b strings.Builder
	fmt.Fprintf(&b, "id             %s\n", dl.ID)
	fmt.Fprintf(&b, "event          %s\n", orDash(dl.Name))
	fmt.Fprintf(&b, "event id       %s\n", orDash(eventIDOf(dl.Body)))
	fmt.Fprintf(&b, "attempts       %d\n", dl.Attempts)
	fmt.Fprintf(&b, "first failure  %s\n", dlqTime(dl.FirstFailure))
	fmt.Fprintf(&b, "dead since     %s\n", dlqTime(dl.DeadAt))
	fmt.Fprintf(&b, "error          %s\n", orDash(dl.Error))
	b.WriteString("message\n")
	var pretty strings.Builder
	if ind, err := json.MarshalIndent(json.RawMessage(dl.Body), "  ", "  "); err == nil {
		pretty.Write(ind)
	} else {
		pretty.WriteString(fmt.Sprintf("%q", dl.Body))
	}
	b.WriteString("  " + pretty.String() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// deadLetterJSON is a dead letter as --output json writes it.
type deadLetterJSON struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	EventID      string          `json:"eventId,omitempty"`
	Error        string          `json:"error"`
	Attempts     int             `json:"attempts"`
	FirstFailure *time.Time      `json:"firstFailure,omitempty"`
	DeadAt       *time.Time      `json:"deadAt,omitempty"`
	Message      json.RawMessage `json:"message,omitempty"`
	// Body is the message when it is not JSON.
	Body string `json:"body,omitempty"`
}

// writeDeadLettersJSON writes a JSON array of dead letters, their message
// included when full is set.
func writeDeadLettersJSON(w io.Writer, dls []driver.DeadLetter, full bool) error {
	out := make([]deadLetterJSON, 0, len(dls))
	for _, dl := range dls {
		j := deadLetterJSON{ID: dl.ID, Name: dl.Name, EventID: eventIDOf(dl.Body), Error: dl.Error, Attempts: dl.Attempts}
		if !dl.FirstFailure.IsZero() {
			j.FirstFailure = &dl.FirstFailure
		}
		if !dl.DeadAt.IsZero() {
			j.DeadAt = &dl.DeadAt
		}
		if full {
			if json.Valid(dl.Body) {
				j.Message = dl.Body
			} else {
				j.Body = string(dl.Body)
			}
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if full && len(out) == 1 {
		return enc.Encode(out[0])
	}
	return enc.Encode(out)
}
