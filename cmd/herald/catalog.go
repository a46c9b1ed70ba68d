package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/catalog/export"
	"github.com/heraldhq/herald/topic"
)

// catalogOutputs are the formats `herald catalog --output` writes.
var catalogOutputs = []string{"text", "json", "markdown", "asyncapi"}

func newCatalogCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "catalog [PATTERN]",
		Short: "List the catalogue of service events",
		Long: `List every event the Open Integration Hub services publish, grouped by service:
its kind (canonical: a name of the "Service Events" document; alias: the name
OIH really publishes for a canonical one; operational: an event the document
omits), whether the audit log records it, and what it means.

PATTERN is a topic pattern with AMQP rules: words are separated by '.', '*'
matches exactly one word and '#' zero or more. Only the matching events are
listed; a pattern that matches none is an error.

--output json, markdown and asyncapi export the (matching) catalogue with the
payload schemas: markdown is docs/events.md, asyncapi an AsyncAPI 3.0.0
document of the RabbitMQ topic exchange event-bus.`,
		Example: `  herald catalog
  herald catalog 'iam.*.created'
  herald catalog 'secrets.#' --output json
  herald catalog -o asyncapi > asyncapi.json
  herald catalog check flowrepo.flow.created --payload '{"flowId":"f1","user":"u1","tenant":""}'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("catalog takes at most one PATTERN, got %d arguments (quote a pattern with * or #)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(catalogOutputs, output) {
				return usagef("--output %q: want one of %s", output, strings.Join(catalogOutputs, ", "))
			}
			cat := catalog.Default()
			if len(args) == 1 {
				pattern := args[0]
				if err := topic.ValidatePattern(pattern); err != nil {
					return &usageError{err}
				}
				cat = cat.Filter(pattern)
				if len(cat.Entries()) == 0 {
					return noMatch(pattern)
				}
			}
			return writeCatalog(cmd.OutOrStdout(), cat, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: "+strings.Join(catalogOutputs, ", "))
	cmd.AddCommand(newCatalogCheckCmd())
	return cmd
}

// noMatch explains an empty listing, suggesting a name when the pattern
// was a plain name with a typo.
func noMatch(pattern string) error {
	if !topic.HasWildcard(pattern) {
		if s, ok := catalog.Default().Suggest(pattern); ok {
			return fmt.Errorf("no catalogued event matches %q: did you mean %s?", pattern, s)
		}
	}
	return fmt.Errorf("no catalogued event matches %q", pattern)
}

func writeCatalog(w io.Writer, cat *catalog.Catalog, output string) error {
	var (
		b   []byte
		err error
	)
	switch output {
	case "json":
		b, err = export.JSON(cat)
	case "markdown":
		b = export.Markdown(cat)
	case "asyncapi":
		b, err = export.AsyncAPI(cat)
	default:
		b = catalogTable(cat)
	}
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write catalogue: %w", err)
	}
	return nil
}

// catalogTable renders the catalogue as an aligned table, one block of
// rows per service under a line naming it.
func catalogTable(cat *catalog.Catalog) []byte {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tAUDITED\tPERSONAL DATA\tDESCRIPTION")
	entries := cat.Entries()
	audited := 0
	for i, e := range entries {
		if i == 0 || e.Service != entries[i-1].Service {
			// Service lines are cells of the same table, so the columns
			// stay aligned across services.
			fmt.Fprintf(tw, "%s\t\t\t\t\n", e.Service)
		}
		isAudited := "no"
		if e.Audited {
			isAudited = "yes"
			audited++
		}
		personal := "-"
		if len(e.Personal) > 0 {
			var ps []string
			for _, f := range e.Personal {
				ps = append(ps, strings.TrimPrefix(f.Path, "/")+"="+f.Kind)
			}
			personal = strings.Join(ps, ",")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.Name, e.Kind, isAudited, personal, e.Description)
	}
	_ = tw.Flush() // writes to a bytes.Buffer, which cannot fail
	var out bytes.Buffer
	for line := range strings.Lines(buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	fmt.Fprintf(&out, "\n%s (%d audited) from %s\n",
		plural(len(entries), "event", "events"), audited, plural(len(cat.Services()), "service", "services"))
	return out.Bytes()
}

func newCatalogCheckCmd() *cobra.Command {
	var payload string
	cmd := &cobra.Command{
		Use:   "check NAME",
		Short: "Check an event name, and a payload, against the catalogue",
		Long: `Check that NAME is a catalogued event and, with --payload, that the payload
satisfies the event's JSON Schema: exactly what herald's bus checks before it
publishes. On failure the error names the closest known name, or the payload
field and the schema rule it breaks, and the exit code is 1.

--payload takes the JSON itself, @FILE to read it from a file, or - (or @-,
as herald publish writes it) to read it from standard input.`,
		Example: `  herald catalog check iam.user.removedFromTenant
  herald catalog check flowrepo.flow.creatd         # fails: did you mean flowrepo.flow.created?
  herald catalog check iam.user.created --payload '{"id":"5f1c","username":"jane@example.com"}'
  herald catalog check iam.token.deleted --payload @event-payload.json
  echo '{"id":"5f1c"}' | herald catalog check flow.started --payload -`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("check takes one event NAME, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var body []byte
			if cmd.Flags().Changed("payload") {
				b, err := readPayloadFlag(cmd, payload)
				if err != nil {
					return err
				}
				body = b
			}
			cat := catalog.Default()
			e, err := cat.Find(name)
			if err != nil {
				return err
			}
			if body != nil {
				if err := cat.ValidatePayload(name, body); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ok: %s is catalogued: %s\n", name, describeEntry(e))
			if body != nil {
				fmt.Fprintln(out, "ok: the payload matches its schema")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&payload, "payload", "", "the payload to check: JSON, @FILE, or - (or @-) for standard input")
	return cmd
}

// readPayloadFlag reads --payload as publish does (readPayloadArg) and
// checks that it is JSON.
func readPayloadFlag(cmd *cobra.Command, v string) ([]byte, error) {
	b, err := readPayloadArg(v, cmd.InOrStdin())
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		var syn *json.SyntaxError
		err := json.Unmarshal(b, new(any))
		if errors.As(err, &syn) {
			return nil, usagef("--payload is not valid JSON: %v (at byte %d)", err, syn.Offset)
		}
		return nil, usagef("--payload is not valid JSON: %v", err)
	}
	return b, nil
}

func describeEntry(e catalog.Entry) string {
	var parts []string
	switch {
	case e.Kind == catalog.KindAlias:
		parts = append(parts, "alias of "+e.AliasOf)
	case e.IsFamily():
		parts = append(parts, string(e.Kind)+", one of the family "+e.Name)
	default:
		parts = append(parts, string(e.Kind))
	}
	parts = append(parts, "service "+e.Service)
	if len(e.ServiceNames) > 0 {
		parts = append(parts, "serviceName "+strings.Join(e.ServiceNames, " or "))
	}
	if e.Audited {
		parts = append(parts, "audited")
	} else {
		parts = append(parts, "not audited")
	}
	return strings.Join(parts, ", ")
}
