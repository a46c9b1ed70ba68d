package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestTypedServiceRunsInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, "", 3, &out); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := "5f1c0c6e2a9b4c00333333" + []string{"00", "01", "02"}[i]
		for _, want := range []string{"flow-repository: flow " + id + " started", "watcher: flow-repository says flow " + id + " changed"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	}
}
