// Command gen writes package oih's event types from the embedded
// catalogue. It runs through `go generate ./oih`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/oih/internal/typegen"
)

func main() {
	out := flag.String("o", "events.go", "the Go file to write")
	flag.Parse()
	src, err := typegen.Generate(catalog.Default())
	if err == nil {
		err = write(*out, src)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// write replaces path with data, leaving it untouched when it already
// holds data.
func write(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
