// Package event is the vocabulary of what a pipeline run reports while it
// works: stages starting and finishing, components queued, cached, built
// and failed, each step and each line a step prints, root filesystems being
// made, downloads, and log records. A run sends every event to one Sink;
// the CLI's terminal view, its plain lines and its JSON lines are three
// renderers of the same stream, and a program may subscribe its own.
package event

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind says what happened.
type Kind string

// The kinds of event. Every event carries Time; the fields each kind
// fills in are listed beside it.
const (
	// RunStarted opens a run: Project, Version, Runner, Targets and
	// Components (both in plan order).
	RunStarted Kind = "run.started"
	// RunFinished closes it: Seconds, and Error if it failed.
	RunFinished Kind = "run.finished"
	// StageStarted and StageFinished bracket a stage (Stage) of one
	// target (Target, empty for the whole run); StageFinished has
	// Seconds, Error on failure, and Message with a one-line outcome.
	StageStarted  Kind = "stage.started"
	StageFinished Kind = "stage.finished"
	// ComponentQueued: Target, Component, Version.
	ComponentQueued Kind = "component.queued"
	// ComponentCached: the layer was found under its key.
	ComponentCached Kind = "component.cached"
	// ComponentStarted: the component's build began.
	ComponentStarted Kind = "component.started"
	// ComponentStep: a step began; Step is its name, as "2/3 make".
	ComponentStep Kind = "component.step"
	// ComponentOutput: one line (Line) a step printed.
	ComponentOutput Kind = "component.output"
	// ComponentFinished: built; Seconds.
	ComponentFinished Kind = "component.finished"
	// ComponentFailed: Error; Seconds; Step, when a build step failed
	// ("2/3 make").
	ComponentFailed Kind = "component.failed"
	// ComponentCancelled: stopped before it was done because another
	// component failed or the run was interrupted; not a failure of its
	// own. Seconds.
	ComponentCancelled Kind = "component.cancelled"
	// StageOutput: one line (Line) a stage's tool printed, e.g. apt
	// during verify; Component names what it works on.
	StageOutput Kind = "stage.output"
	// RootfsStarted and RootfsFinished bracket making a root filesystem
	// for Target (once per target and package set); Message is what is
	// being made.
	RootfsStarted  Kind = "rootfs.started"
	RootfsFinished Kind = "rootfs.finished"
	// Download: Component (name@version), Bytes of Total (-1 unknown),
	// Done at the end.
	Download Kind = "download"
	// Log is a log record: Level, Message, Attrs. Warning is one at
	// level WARN or above.
	Log     Kind = "log"
	Warning Kind = "warning"
)

// Stage names of a run, in pipeline order.
const (
	StageLoad    = "load"
	StageResolve = "resolve"
	StagePlan    = "plan"
	StageFetch   = "fetch"
	StageBuild   = "build"
	StageHealth  = "health"
	StagePackage = "package"
	StageVerify  = "verify"
)

// Attr is one key and value of a log record, in the record's order.
type Attr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Event is one thing that happened during a run.
type Event struct {
	Time       time.Time `json:"time"`
	Kind       Kind      `json:"kind"`
	Stage      string    `json:"stage,omitempty"`
	Project    string    `json:"project,omitempty"`
	Version    string    `json:"version,omitempty"`
	Runner     string    `json:"runner,omitempty"`
	Target     string    `json:"target,omitempty"`
	Component  string    `json:"component,omitempty"`
	Step       string    `json:"step,omitempty"`
	Line       string    `json:"line,omitempty"`
	Targets    []string  `json:"targets,omitempty"`
	Components []string  `json:"components,omitempty"`
	Bytes      int64     `json:"bytes,omitempty"`
	Total      int64     `json:"total,omitempty"`
	Done       bool      `json:"done,omitempty"`
	Seconds    float64   `json:"seconds,omitempty"`
	Level      string    `json:"level,omitempty"`
	Message    string    `json:"message,omitempty"`
	Attrs      []Attr    `json:"attrs,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Sink receives events. A run may call it from several goroutines at
// once; Serialize makes one safe for that.
type Sink func(Event)

// Emit sends e to s, stamping its time; a nil sink drops it.
func (s Sink) Emit(e Event) {
	if s == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s(e)
}

// Serialize returns a sink that calls s from one goroutine at a time, in
// the order the calls arrive.
func Serialize(s Sink) Sink {
	if s == nil {
		return nil
	}
	var mu sync.Mutex
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		s(e)
	}
}

// Stage brackets fn, the work of one stage (for one target, when tgt is
// not empty), with StageStarted and StageFinished events; the finish
// carries fn's message, or the first line of its error.
func (s Sink) Stage(name, tgt string, fn func() (string, error)) error {
	start := time.Now()
	s.Emit(Event{Kind: StageStarted, Stage: name, Target: tgt})
	msg, err := fn()
	e := Event{Kind: StageFinished, Stage: name, Target: tgt, Seconds: time.Since(start).Seconds(), Message: msg}
	if err != nil {
		e.Error, _, _ = strings.Cut(err.Error(), "\n")
	}
	s.Emit(e)
	return err
}

// Tee sends every event to each of the sinks, in order.
func Tee(sinks ...Sink) Sink {
	return func(e Event) {
		for _, s := range sinks {
			s.Emit(e)
		}
	}
}

// AttrString formats a record's attributes as key=value pairs, quoting
// values that need it, as slog's text handler does.
func AttrString(attrs []Attr) string {
	var b strings.Builder
	for i, a := range attrs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		if a.Value == "" || strings.ContainsAny(a.Value, " \t\n\"=") {
			fmt.Fprintf(&b, "%q", a.Value)
		} else {
			b.WriteString(a.Value)
		}
	}
	return b.String()
}

// Handler is a slog.Handler that turns log records into Log and Warning
// events, so that every log line of a run reaches the renderer of its
// events instead of being written around it.
type Handler struct {
	sink   Sink
	level  slog.Leveler
	attrs  []Attr
	prefix string
}

// NewHandler returns a handler sending records at level and above to sink.
func NewHandler(sink Sink, level slog.Leveler) *Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &Handler{sink: sink, level: level}
}

// NewLogger is slog.New(NewHandler(sink, level)).
func NewLogger(sink Sink, level slog.Leveler) *slog.Logger {
	return slog.New(NewHandler(sink, level))
}

func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	e := Event{Time: r.Time, Kind: Log, Level: r.Level.String(), Message: r.Message}
	if r.Level >= slog.LevelWarn {
		e.Kind = Warning
	}
	e.Attrs = append(e.Attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		e.Attrs = appendAttr(e.Attrs, h.prefix, a)
		return true
	})
	// The well-known keys fill the event's own fields too, so a renderer
	// can place the record under its target and component.
	for _, a := range e.Attrs {
		switch a.Key {
		case "target":
			e.Target = a.Value
		case "component":
			e.Component = a.Value
		}
	}
	h.sink.Emit(e)
	return nil
}

func appendAttr(out []Attr, prefix string, a slog.Attr) []Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			out = appendAttr(out, p, g)
		}
		return out
	}
	if a.Key == "" {
		return out
	}
	return append(out, Attr{Key: prefix + a.Key, Value: v.String()})
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		c.attrs = appendAttr(c.attrs, h.prefix, a)
	}
	return &c
}

func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

// LineWriter is an io.Writer that sends each complete line written to it
// as an event made by line; Flush sends what is left without a newline.
type LineWriter struct {
	mu      sync.Mutex
	partial []byte
	send    func(line string)
}

// NewLineWriter returns a writer calling send with each line, without its
// newline (and without a trailing carriage return).
func NewLineWriter(send func(line string)) *LineWriter { return &LineWriter{send: send} }

func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := append(w.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		w.send(string(bytes.TrimSuffix(data[:i], []byte("\r"))))
		data = data[i+1:]
	}
	// A line longer than 64 KiB is sent in pieces rather than held.
	for len(data) > 64<<10 {
		w.send(string(data[:64<<10]))
		data = data[64<<10:]
	}
	w.partial = append(w.partial[:0], data...)
	return len(p), nil
}

// Flush sends the unterminated rest, if any.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.send(string(w.partial))
		w.partial = w.partial[:0]
	}
}
