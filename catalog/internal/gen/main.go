// Command gen writes docs/events.md from the embedded catalogue. It runs
// through `go generate ./catalog`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/catalog/export"
)

func main() {
	out := flag.String("o", "../docs/events.md", "the Markdown file to write")
	flag.Parse()
	if err := write(*out, export.Markdown(catalog.Default())); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// write replaces path with data, leaving it untouched when it already
// holds data so that its modification time means something.
func write(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
