package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressBar shows how far a long run has got, on a terminal only
// (publish --count and simulate count events, verify entries).
type progressBar struct{ bar *progressbar.ProgressBar }

func newProgressBar(count int, stderr io.Writer) progressBar {
	return newBar(count, stderr, "publishing", "events")
}

// newBar is a progress bar of count items, counted in units (its rate is
// units per second), described as what.
func newBar(count int, stderr io.Writer, what, units string) progressBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return progressBar{}
	}
	total := count
	if total == 0 {
		total = -1 // a spinner: the run ends when interrupted
	}
	return progressBar{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(units),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(40),
	)}
}

func (p progressBar) set(done int) {
	if p.bar != nil {
		_ = p.bar.Set(done)
	}
}

// finish takes the bar off the screen: the summary follows.
func (p progressBar) finish() {
	if p.bar != nil {
		_ = p.bar.Clear()
		_ = p.bar.Exit()
	}
}
