// Package progress renders a run's event stream for people and programs:
// a live terminal view, plain lines for CI and pipes (every line a step
// prints, prefixed by target and component, as it is printed), JSON lines,
// or quiet. Each is a Renderer: a sink for events, and Close to finish.
package progress

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/coach-build/coach/pipeline/event"
)

// Modes.
const (
	Auto  = "auto"
	TTY   = "tty"
	Plain = "plain"
	Quiet = "quiet"
	JSON  = "json"
)

// Renderer shows events as they come.
type Renderer interface {
	// Event renders one event; it is safe to call from several
	// goroutines.
	Event(event.Event)
	// Close stops the renderer after the last event, leaving the final
	// state (the summary, in the terminal view) on screen.
	Close()
}

// Options choose how to render.
type Options struct {
	// Verbose shows debug records and, in the terminal view, queued
	// components.
	Verbose bool
}

// IsTerminal reports whether w is a terminal and $CI is not set: that is
// where auto picks the live view.
func IsTerminal(w io.Writer) bool {
	if os.Getenv("CI") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// Resolve turns auto into tty or plain for w.
func Resolve(mode string, w io.Writer) string {
	if mode == Auto || mode == "" {
		if IsTerminal(w) {
			return TTY
		}
		return Plain
	}
	return mode
}

// New returns the renderer of a mode (auto resolved for w) writing to w.
func New(mode string, w io.Writer, o Options) (Renderer, error) {
	switch Resolve(mode, w) {
	case TTY:
		return NewTTY(w, o), nil
	case Plain:
		return NewPlain(w, o), nil
	case Quiet:
		return NewQuiet(w), nil
	case JSON:
		return NewJSON(w, o), nil
	}
	return nil, fmt.Errorf("progress must be auto, tty, plain or quiet, not %q", mode)
}
