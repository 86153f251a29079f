package progress

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/event"
)

// PlainRenderer writes one line per event, as it happens: for CI logs and
// pipes. Every line a step prints appears at once, prefixed with its
// target and component, so a long step is never silent.
type PlainRenderer struct {
	mu      sync.Mutex
	w       io.Writer
	o       Options
	quiet   bool
	quarter map[string]int64
}

// NewPlain returns the plain renderer.
func NewPlain(w io.Writer, o Options) *PlainRenderer {
	return &PlainRenderer{w: w, o: o, quarter: map[string]int64{}}
}

// NewQuiet returns a plain renderer that shows only warnings, errors and
// failures.
func NewQuiet(w io.Writer) *PlainRenderer {
	r := NewPlain(w, Options{})
	r.quiet = true
	return r
}

// Line is the plain text of an event, without its time, or "" for an
// event that is not shown. The terminal view prints log records with it.
func Line(e event.Event, verbose bool) string {
	who := strings.TrimSpace(e.Target + " " + e.Component)
	switch e.Kind {
	case event.RunStarted:
		return fmt.Sprintf("coach: %s %s for %s with the %s runner (%d components)", e.Project, e.Version, strings.Join(e.Targets, ", "), e.Runner, len(e.Components))
	case event.RunFinished:
		if e.Error != "" {
			return fmt.Sprintf("coach: %s failed after %s", e.Project, seconds(e.Seconds))
		}
		return fmt.Sprintf("coach: %s done in %s", e.Project, seconds(e.Seconds))
	case event.StageStarted:
		if !verbose {
			return ""
		}
		return fmt.Sprintf("%s%s started", prefix(e.Target), e.Stage)
	case event.StageFinished:
		if e.Error != "" {
			return fmt.Sprintf("%s%s FAILED after %s: %s", prefix(e.Target), e.Stage, seconds(e.Seconds), e.Error)
		}
		msg := ""
		if e.Message != "" {
			msg = ": " + e.Message
		}
		return fmt.Sprintf("%s%s done in %s%s", prefix(e.Target), e.Stage, seconds(e.Seconds), msg)
	case event.ComponentQueued:
		if !verbose {
			return ""
		}
		return fmt.Sprintf("%s: queued", who)
	case event.ComponentCached:
		if e.Message == "remote" {
			return fmt.Sprintf("%s: pulled from the remote cache", who)
		}
		return fmt.Sprintf("%s: cached", who)
	case event.ComponentStarted:
		return fmt.Sprintf("%s: building %s", who, e.Version)
	case event.ComponentStep:
		return fmt.Sprintf("%s: step %s", who, e.Step)
	case event.ComponentOutput, event.StageOutput:
		return fmt.Sprintf("%s | %s", who, e.Line)
	case event.ComponentFinished:
		return fmt.Sprintf("%s: built in %s", who, seconds(e.Seconds))
	case event.ComponentFailed:
		return fmt.Sprintf("%s: FAILED after %s: %s", who, seconds(e.Seconds), e.Error)
	case event.ComponentCancelled:
		return fmt.Sprintf("%s: cancelled after %s (another component failed, or the run was stopped)", who, seconds(e.Seconds))
	case event.RootfsStarted:
		return fmt.Sprintf("%s: %s (once per target and package set)", e.Target, e.Message)
	case event.RootfsFinished:
		what := cmp.Or(e.Message, "root filesystem")
		if e.Error != "" {
			return fmt.Sprintf("%s: %s not made after %s: %s", e.Target, what, seconds(e.Seconds), e.Error)
		}
		return fmt.Sprintf("%s: %s made in %s", e.Target, what, seconds(e.Seconds))
	case event.Log, event.Warning:
		if e.Level == "DEBUG" && !verbose {
			return ""
		}
		s := e.Level + " " + e.Message
		if len(e.Attrs) > 0 {
			s += " " + event.AttrString(e.Attrs)
		}
		return s
	}
	return ""
}

func prefix(target string) string {
	if target == "" {
		return ""
	}
	return target + ": "
}

func seconds(s float64) string {
	return (time.Duration(s*10) * time.Second / 10).String()
}

// Event writes the event's line.
func (r *PlainRenderer) Event(e event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.quiet && !important(e) {
		return
	}
	var line string
	if e.Kind == event.Download {
		line = r.download(e)
	} else {
		line = Line(e, r.o.Verbose)
	}
	if line == "" {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	fmt.Fprintf(r.w, "%s %s\n", t.Format("15:04:05"), line)
}

// important is what quiet mode still shows.
func important(e event.Event) bool {
	switch e.Kind {
	case event.Warning, event.ComponentFailed:
		return true
	case event.StageFinished, event.RunFinished, event.RootfsFinished:
		return e.Error != ""
	}
	return false
}

// download logs a large download at each quarter, and its end.
func (r *PlainRenderer) download(e event.Event) string {
	const big = 1 << 20
	if e.Total < big {
		return ""
	}
	if e.Done {
		delete(r.quarter, e.Component)
		return fmt.Sprintf("%s: downloaded %s", e.Component, mib(e.Total))
	}
	q := 4 * e.Bytes / e.Total
	if q > r.quarter[e.Component] && q < 4 {
		r.quarter[e.Component] = q
		return fmt.Sprintf("%s: downloading, %d%% of %s", e.Component, 25*q, mib(e.Total))
	}
	return ""
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Close does nothing: every line is written already.
func (r *PlainRenderer) Close() {}

// JSONRenderer writes every event as one JSON line, for programs reading
// stderr (--log-format json).
type JSONRenderer struct {
	mu  sync.Mutex
	enc *json.Encoder
	o   Options
}

// NewJSON returns the JSON lines renderer.
func NewJSON(w io.Writer, o Options) *JSONRenderer {
	return &JSONRenderer{enc: json.NewEncoder(w), o: o}
}

// Event writes the event; debug records only when verbose.
func (r *JSONRenderer) Event(e event.Event) {
	if e.Kind == event.Log && e.Level == "DEBUG" && !r.o.Verbose {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enc.Encode(e)
}

// Close does nothing.
func (r *JSONRenderer) Close() {}
