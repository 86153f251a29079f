package progress

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"golang.org/x/term"

	"github.com/coach-build/coach/pipeline/event"
)

// TTYRenderer is the live terminal view, a bubbletea program: a header,
// one line per target and per component with its state, a ticking elapsed
// time and the last line its step printed, and at the end a summary in
// pipeline order. Log records are printed above the view by the program
// itself, so the view never draws over them.
type TTYRenderer struct {
	p       *tea.Program
	w       io.Writer
	verbose bool
	done    chan struct{}
	once    sync.Once
	// width is the terminal's, for the lines printed above the view.
	width *atomic.Int64
	// mu guards closed: once the view is closed, log records are
	// printed as plain lines, after its final frame.
	mu     sync.Mutex
	closed bool
}

type eventMsg event.Event
type tickMsg time.Time
type closeMsg struct{}

// NewTTY starts the terminal view on w.
func NewTTY(w io.Writer, o Options) *TTYRenderer {
	lr := lipgloss.NewRenderer(w)
	width := &atomic.Int64{}
	width.Store(100)
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			width.Store(int64(cols))
		}
	}
	m := &model{
		start: time.Now(), width: width,
		rows: map[string]*row{}, stages: map[string]map[string]*stageState{},
		downloads: map[string]event.Event{}, rootfs: map[string]event.Event{},
		st: styles{
			dim:  lr.NewStyle().Faint(true),
			bold: lr.NewStyle().Bold(true),
			ok:   lr.NewStyle().Foreground(lipgloss.Color("2")),
			bad:  lr.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
			busy: lr.NewStyle().Foreground(lipgloss.Color("3")),
		},
	}
	r := &TTYRenderer{done: make(chan struct{}), verbose: o.Verbose, w: w, width: width}
	r.p = tea.NewProgram(m, tea.WithOutput(w), tea.WithInput(nil), tea.WithoutSignalHandler())
	go func() {
		defer close(r.done)
		r.p.Run()
	}()
	return r
}

// Event updates the view; a log record is printed above it, wrapped at
// the terminal's width (a line the terminal wrapped by itself would throw
// the view's count of its own lines off). After Close, log records are
// printed as plain lines.
func (r *TTYRenderer) Event(e event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Kind {
	case event.Log, event.Warning:
		line := Line(e, r.verbose)
		if line == "" {
			return
		}
		if r.closed {
			fmt.Fprintln(r.w, line)
			return
		}
		r.p.Println(ansi.Hardwrap(line, lineWidth(r.width), true))
		return
	}
	if !r.closed {
		r.p.Send(eventMsg(e))
	}
}

// lineWidth is how wide a line the view draws or prints may be: one
// column short of the terminal's width, so that no line ends in its last
// column, and never under 20.
func lineWidth(width *atomic.Int64) int { return max(int(width.Load())-1, 20) }

// Close draws the summary and stops the program, leaving the summary on
// the screen.
func (r *TTYRenderer) Close() {
	r.once.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		r.p.Send(closeMsg{})
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			r.p.Kill()
			<-r.done
		}
	})
}

type styles struct{ dim, bold, ok, bad, busy lipgloss.Style }

type row struct {
	target, component, version string
	state                      string // queued, cached, building, built, failed
	step, last                 string
	start                      time.Time
	seconds                    float64
	err                        string
}

type stageState struct {
	name    string
	start   time.Time
	done    bool
	seconds float64
	message string
	err     string
}

type model struct {
	st    styles
	start time.Time
	// width is the terminal's, shared with the renderer (which wraps
	// the lines printed above the view).
	width      *atomic.Int64
	frame      int
	project    string
	version    string
	runner     string
	targets    []string
	components []string
	rows       map[string]*row
	stages     map[string]map[string]*stageState
	stageOrder map[string][]string
	downloads  map[string]event.Event
	rootfs     map[string]event.Event // the root filesystem or environment being made, by target
	finished   bool
	finalErr   string
	finalSecs  float64
	closed     bool
}

func tick() tea.Cmd {
	return tea.Tick(200*time.Millisecond, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m *model) Init() tea.Cmd { return tick() }

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		// A terminal of unknown size (a pty nobody sized, as some CI
		// runners and editors give) says 0: keep the width assumed.
		if msg.Width > 0 {
			m.width.Store(int64(msg.Width))
		}
	case tickMsg:
		m.frame++
		if m.closed {
			return m, nil
		}
		return m, tick()
	case closeMsg:
		m.closed = true
		return m, tea.Quit
	case eventMsg:
		m.apply(event.Event(msg))
	}
	return m, nil
}

func key(target, component string) string { return target + "\x00" + component }

func (m *model) target(name string) {
	if name == "" {
		return
	}
	for _, t := range m.targets {
		if t == name {
			return
		}
	}
	m.targets = append(m.targets, name)
}

func (m *model) row(e event.Event) *row {
	m.target(e.Target)
	k := key(e.Target, e.Component)
	r := m.rows[k]
	if r == nil {
		r = &row{target: e.Target, component: e.Component, state: "queued"}
		m.rows[k] = r
		found := false
		for _, c := range m.components {
			found = found || c == e.Component
		}
		if !found {
			m.components = append(m.components, e.Component)
		}
	}
	if e.Version != "" {
		r.version = e.Version
	}
	return r
}

// apply records an event in the view's state.
func (m *model) apply(e event.Event) {
	switch e.Kind {
	case event.RunStarted:
		m.project, m.version, m.runner = e.Project, e.Version, e.Runner
		for _, t := range e.Targets {
			m.target(t)
		}
		m.components = append(m.components[:0], e.Components...)
	case event.RunFinished:
		m.finished, m.finalErr, m.finalSecs = true, e.Error, e.Seconds
		if m.project == "" {
			m.project = e.Project
		}
	case event.StageStarted, event.StageFinished:
		m.target(e.Target)
		ss := m.stages[e.Target]
		if ss == nil {
			ss = map[string]*stageState{}
			m.stages[e.Target] = ss
		}
		s := ss[e.Stage]
		if s == nil {
			s = &stageState{name: e.Stage}
			ss[e.Stage] = s
			if m.stageOrder == nil {
				m.stageOrder = map[string][]string{}
			}
			m.stageOrder[e.Target] = append(m.stageOrder[e.Target], e.Stage)
		}
		if e.Kind == event.StageStarted {
			s.start, s.done = e.Time, false
		} else {
			s.done, s.seconds, s.message, s.err = true, e.Seconds, e.Message, e.Error
		}
	case event.ComponentQueued:
		m.row(e)
	case event.ComponentCached:
		r := m.row(e)
		r.state = "cached"
		if e.Message == "remote" {
			r.state = "pulled"
		}
	case event.ComponentStarted:
		r := m.row(e)
		r.state, r.start = "building", e.Time
	case event.ComponentStep:
		r := m.row(e)
		r.step, r.last = e.Step, ""
	case event.ComponentOutput:
		r := m.row(e)
		if l := clean(e.Line); l != "" {
			r.last = l
		}
	case event.ComponentFinished:
		r := m.row(e)
		r.state, r.seconds, r.last = "built", e.Seconds, ""
	case event.ComponentFailed:
		r := m.row(e)
		r.state, r.seconds, r.err = "failed", e.Seconds, e.Error
	case event.ComponentCancelled:
		r := m.row(e)
		r.state, r.seconds, r.last = "cancelled", e.Seconds, ""
	case event.StageOutput:
		if ss := m.stages[e.Target]; ss != nil && ss[e.Stage] != nil {
			if l := clean(e.Line); l != "" {
				ss[e.Stage].message = l
			}
		}
	case event.RootfsStarted:
		m.target(e.Target)
		m.rootfs[e.Target] = e
	case event.RootfsFinished:
		delete(m.rootfs, e.Target)
	case event.Download:
		if e.Done {
			delete(m.downloads, e.Component)
		} else {
			m.downloads[e.Component] = e
		}
	}
}

// clean makes a line of build output safe to draw on one line: escape
// sequences and control characters go, tabs become spaces.
func clean(s string) string {
	s = ansi.Strip(s)
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func elapsed(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func (m *model) View() string {
	var b strings.Builder
	now := time.Now()
	line := func(s string) {
		b.WriteString(ansi.Truncate(s, lineWidth(m.width), "…"))
		b.WriteByte('\n')
	}
	if m.project != "" {
		head := fmt.Sprintf("coach %s %s · %s · %s runner", m.project, m.version, plural(len(m.targets), "target"), m.runner)
		if !m.finished {
			head += fmt.Sprintf(" · %s", elapsed(now.Sub(m.start)))
		}
		line(m.st.bold.Render(head))
	}
	nameWidth := 4
	for _, c := range m.components {
		nameWidth = max(nameWidth, len(c))
	}
	for _, t := range m.targets {
		line(m.targetLine(t, now))
		for _, c := range m.components {
			r := m.rows[key(t, c)]
			if r == nil {
				continue
			}
			line(m.componentLine(r, nameWidth, now))
		}
	}
	if len(m.stageOrder[""]) > 0 {
		line(m.targetLine("", now))
	}
	if len(m.downloads) > 0 && !m.finished {
		var parts []string
		for _, n := range slices.Sorted(maps.Keys(m.downloads)) {
			d := m.downloads[n]
			if d.Total > 0 {
				parts = append(parts, fmt.Sprintf("%s %d%% of %s", n, 100*d.Bytes/d.Total, mib(d.Total)))
			} else {
				parts = append(parts, fmt.Sprintf("%s %s", n, mib(d.Bytes)))
			}
		}
		line(m.st.dim.Render("fetching: " + strings.Join(parts, ", ")))
	}
	if m.finished {
		line(m.summary())
	}
	return b.String()
}

func (m *model) targetLine(t string, now time.Time) string {
	var parts []string
	if r, ok := m.rootfs[t]; ok {
		what := "making its root filesystem"
		if strings.HasPrefix(r.Message, "installing ") {
			what = r.Message // a build environment over the base
		}
		parts = append(parts, m.st.busy.Render(fmt.Sprintf("%s (%s)", what, elapsed(now.Sub(r.Time)))))
	}
	for _, name := range m.stageOrder[t] {
		s := m.stages[t][name]
		switch {
		case !s.done:
			msg := fmt.Sprintf("%s %s (%s)", spinner[m.frame%len(spinner)], name, elapsed(now.Sub(s.start)))
			if s.message != "" && name != event.StageBuild {
				msg += " " + m.st.dim.Render(s.message)
			}
			parts = append(parts, m.st.busy.Render(msg))
		case s.err != "":
			parts = append(parts, m.st.bad.Render("✗ "+name+": "+s.err))
		default:
			parts = append(parts, m.st.ok.Render("✓ "+name))
		}
	}
	label := t
	if t == "" {
		label = "release"
	}
	return m.st.bold.Render(label) + "  " + strings.Join(parts, "  ")
}

func (m *model) componentLine(r *row, width int, now time.Time) string {
	name := fmt.Sprintf("  %-*s %-10s", width, r.component, r.version)
	switch r.state {
	case "queued":
		return m.st.dim.Render(name + " queued")
	case "cached":
		return name + " " + m.st.ok.Render("cached")
	case "pulled":
		return name + " " + m.st.ok.Render("pulled") + " from the remote cache"
	case "built":
		return name + " " + m.st.ok.Render("built") + fmt.Sprintf(" in %s", seconds(r.seconds))
	case "failed":
		return name + " " + m.st.bad.Render("FAILED") + fmt.Sprintf(" after %s: %s", seconds(r.seconds), r.err)
	case "cancelled":
		return m.st.dim.Render(name + fmt.Sprintf(" cancelled after %s", seconds(r.seconds)))
	}
	s := name + " " + m.st.busy.Render(fmt.Sprintf("%s building", spinner[m.frame%len(spinner)]))
	if r.step != "" {
		s += " " + r.step
	}
	s += fmt.Sprintf(" (%s)", elapsed(now.Sub(r.start)))
	if r.last != "" {
		s += m.st.dim.Render(" │ " + r.last)
	}
	return s
}

func (m *model) summary() string {
	built, cached, pulled, failed := 0, 0, 0, 0
	for _, r := range m.rows {
		switch r.state {
		case "built":
			built++
		case "cached":
			cached++
		case "pulled":
			pulled++
		case "failed":
			failed++
		}
	}
	s := fmt.Sprintf("%s: %d built, %d cached", plural(len(m.rows), "component"), built, cached)
	if pulled > 0 {
		s += fmt.Sprintf(", %d pulled", pulled)
	}
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	if m.finalErr != "" {
		return m.st.bad.Render(fmt.Sprintf("coach %s failed after %s", m.project, seconds(m.finalSecs))) + " · " + s
	}
	return m.st.ok.Render(fmt.Sprintf("coach %s done in %s", m.project, seconds(m.finalSecs))) + " · " + s
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
