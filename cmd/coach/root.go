package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/progress"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/spec"
)

// app is the state shared by all commands of one invocation.
type app struct {
	// stdout closes the live view before its first byte (stdoutWriter);
	// rawStdout is the process's own, for a shell's terminal.
	stdout, stderr io.Writer
	rawStdout      io.Writer
	dir            string
	json           bool
	logFormat      string
	progress       string
	verbose        bool
	// timeout stops a command that runs longer (--timeout); timedOut is
	// the command context's, to tell its end from an interrupt.
	timeout  time.Duration
	cmdCtxMu sync.Mutex
	cmdCtxs  []context.Context
	log      *slog.Logger
	// events is the run's event stream, rendered on stderr by render.
	events event.Sink
	render progress.Renderer
	// command is the command's name and result what it produced, for
	// the one JSON document --json prints at the end (success or not).
	command string
	result  any
	// interrupts watches for SIGINT and SIGTERM; finished is the end of
	// the run's output, printed once (by the run, or by a forced exit).
	interrupts *interrupts
	finished   sync.Once
}

// jsonFormat is the version of the documents --json prints. It changes
// only when a field changes meaning or goes away; new fields may appear.
const jsonFormat = 1

// envelope is the one document --json prints.
type envelope struct {
	FormatVersion int        `json:"format_version"`
	Command       string     `json:"command"`
	OK            bool       `json:"ok"`
	Result        any        `json:"result,omitempty"`
	Error         *errorBody `json:"error,omitempty"`
}

// errorBody says why a command failed.
type errorBody struct {
	ExitCode int             `json:"exit_code"`
	Stage    string          `json:"stage,omitempty"`
	Message  string          `json:"message"`
	Problems []*spec.Problem `json:"problems,omitempty"`
	// Target is the (first) failed target, with its arch when foreign.
	Target string `json:"target,omitempty"`
	// Component, Step, StepExitCode, TimedOut and Log say which build
	// step failed, how, and where its whole output is.
	Component    string   `json:"component,omitempty"`
	Step         *stepRef `json:"step,omitempty"`
	StepExitCode *int     `json:"step_exit_code,omitempty"`
	TimedOut     string   `json:"timed_out,omitempty"`
	Log          string   `json:"log,omitempty"`
	// WorkDir is the failed component's work directory, when kept
	// (--keep-failed).
	WorkDir string `json:"work_dir,omitempty"`
}

// stepRef is a build step: its 1-based index and its name.
type stepRef struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
}

// describeFailure fills in what the error knows of where it happened.
func (b *errorBody) describeFailure(err error) {
	var te *pipeline.TargetsError
	if errors.As(err, &te) && len(te.Failed) > 0 {
		b.Target = te.Failed[0].Label()
	}
	var se *runner.StepError
	if !errors.As(err, &se) {
		return
	}
	b.Component, b.Step, b.Log, b.WorkDir = se.Component, &stepRef{Index: se.Step + 1, Name: se.StepName}, se.LogPath, se.WorkDir
	if se.ExitCode >= 0 && se.TimedOut == 0 && se.Err == nil {
		code := se.ExitCode
		b.StepExitCode = &code
	}
	if se.TimedOut > 0 {
		b.TimedOut = se.TimedOut.String()
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	a := &app{rawStdout: stdout, stderr: stderr}
	a.stdout = &stdoutWriter{a: a, w: stdout}
	a.interrupts = newInterrupts(a)
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(a.interrupts.ctx)
	err := root.Execute()
	interrupted := a.interrupts.interrupted()
	if a.timedOut() {
		// The command's own deadline, not a signal: exit 1, said so.
		err = fmt.Errorf("timed out after %s (--timeout): what was running was stopped, and nothing half-made was kept (%v)", a.timeout, err)
		a.finish(err, exitFailure)
		a.interrupts.stop()
		return exitFailure
	}
	code := exitCode(err)
	if err != nil && isCobraUsage(err) {
		code = exitUsage
		// cobra refused the command line before --json was parsed (an
		// unknown command or flag): the one document is still due.
		if !a.json && wantsJSON(args) {
			a.json = true
			if cmd, _, ferr := root.Find(args); ferr == nil && cmd != root {
				a.command = strings.TrimPrefix(cmd.CommandPath(), root.Name()+" ")
			}
		}
	}
	if interrupted {
		// Whatever the command made of its cancelled context.
		code = exitInterrupted
		if err == nil {
			err = pipelineInterrupted("interrupted")
		}
	}
	if a.json && printedHelp(root, args) {
		a.finished.Do(func() {}) // help or the version: text by nature, no document
	}
	a.finish(err, code)
	a.interrupts.stop()
	return code
}

// stdoutWriter is a command's stdout. On a terminal, stdout and the live
// view (on stderr) share the screen, and a view still drawing would paint
// its next frame over what the command prints: so the view is closed,
// leaving its final frame, before the first byte written here.
type stdoutWriter struct {
	a    *app
	w    io.Writer
	once sync.Once
}

func (s *stdoutWriter) Write(p []byte) (int, error) {
	s.once.Do(s.a.closeView)
	return s.w.Write(p)
}

// closeView stops the live view (if any) and leaves its final frame; the
// renderer prints later log records as plain lines.
func (a *app) closeView() {
	if a.render != nil {
		a.render.Close()
	}
}

// finish closes the live view, prints the one JSON document under
// --json, and reports a failure on stderr: once per run, whether the
// command returned or an interrupt cut it short.
func (a *app) finish(err error, code int) {
	a.finished.Do(func() {
		a.closeView()
		if a.json {
			a.writeEnvelope(err, code)
		}
		var se *shellExit
		if err != nil && !errors.As(err, &se) {
			if a.jsonLines() {
				// stderr carries only JSON lines: the failure is in the
				// document, and in the run's last event.
				a.reportJSON(err, code)
			} else {
				a.report(err)
			}
		}
	})
}

// jsonLines reports whether stderr carries JSON lines (--log-format json,
// or auto with --json).
func (a *app) jsonLines() bool {
	return a.logFormat == "json" || (a.logFormat == "auto" || a.logFormat == "") && a.json
}

// reportJSON writes a failure to stderr as one JSON line, for readers of
// the event stream.
func (a *app) reportJSON(err error, code int) {
	line, _ := json.Marshal(struct {
		Kind     string `json:"kind"`
		ExitCode int    `json:"exit_code"`
		Message  string `json:"message"`
	}{"error", code, err.Error()})
	fmt.Fprintf(a.stderr, "%s\n", line)
}

// printedHelp reports whether cobra answered with help or the version
// (text by nature), where no document is due. --version asks for coach's
// version only where the command has no --version of its own (build,
// plan and package have: the version to package).
func printedHelp(root *cobra.Command, args []string) bool {
	cmd, _, err := root.Find(args)
	ownVersion := err == nil && cmd != root && cmd.Flags().Lookup("version") != nil
	for _, arg := range args {
		if arg == "--" {
			break
		}
		if arg == "-h" || arg == "--help" || arg == "--version" && !ownVersion {
			return true
		}
	}
	return false
}

// errTimedOut is the cause of a command context that reached --timeout.
var errTimedOut = errors.New("--timeout reached")

// timedOut reports whether a command's context ended at --timeout.
func (a *app) timedOut() bool {
	a.cmdCtxMu.Lock()
	defer a.cmdCtxMu.Unlock()
	for _, ctx := range a.cmdCtxs {
		if errors.Is(context.Cause(ctx), errTimedOut) {
			return true
		}
	}
	return false
}

// wantsJSON reports whether a command line asks for --json (before any
// "--"), for when cobra could not parse it.
func wantsJSON(args []string) bool {
	for _, arg := range args {
		if arg == "--" {
			return false
		}
		if arg == "--json" || arg == "--json=true" {
			return true
		}
	}
	return false
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	var ee *exitError
	if errors.As(err, &ee) {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "if any flags in the group"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "coach",
		Short: "Build omnibus-style deb and rpm packages from pinned sources",
		Long: `coach compiles everything above libc from pinned sources into one prefix,
checks that nothing links outside it but the allowed system libraries, and
packages the tree as deb and rpm for each target distribution.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion().Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.command = strings.TrimPrefix(cmd.CommandPath(), "coach ")
			// A debug shell needs the terminal: no live view then.
			debug := cmd.Flags().Lookup("debug") != nil && cmd.Flags().Lookup("debug").Changed
			return a.setup(cmd.Annotations["live"] == "true" && !debug)
		},
	}
	root.SetVersionTemplate("coach {{.Version}}\n")
	f := root.PersistentFlags()
	f.StringVarP(&a.dir, "chdir", "C", "", "repository root (default: the nearest directory above . with projects/ or software/)")
	f.BoolVar(&a.json, "json", false, "write one machine-readable JSON document to stdout, on success and on failure")
	f.StringVar(&a.logFormat, "log-format", "auto", "format of what goes to stderr: auto, text or json (json: every event as a JSON line; auto: json with --json, else text)")
	f.StringVar(&a.progress, "progress", "auto", "how text progress is shown: auto, tty (live view), plain (a line per event, step output streamed) or quiet (warnings and failures); auto: tty on a terminal unless $CI is set, else plain")
	f.BoolVarP(&a.verbose, "verbose", "v", false, "log debug detail")
	f.DurationVar(&a.timeout, "timeout", 0, "stop the command when it runs longer than this, e.g. 45m: what runs is stopped as on an interrupt and nothing half-made is kept; exit 1 (0: no limit)")
	root.AddCommand(
		a.versionCommand(),
		a.validateCommand(),
		a.lockCommand(),
		a.bumpCommand(),
		a.schemaCommand(),
		a.cleanCommand(),
		a.outdatedCommand(),
		a.planCommand(),
		a.targetsCommand(),
		a.newCommand(),
		a.fetchCommand(),
		a.cacheCommand(),
		a.buildCommand(),
		a.shellCommand(),
		a.doctorCommand(),
		a.healthCommand(),
		a.packageCommand(),
		a.verifyCommand(),
		a.publishCommand(),
	)
	completeEnums(root)
	return root
}

// setup picks the renderer of the event stream and the logger feeding
// it. Only live commands (those that build, fetch or install) get the
// terminal view; the others write plain lines.
func (a *app) setup(live bool) error {
	level := slog.LevelInfo
	if a.verbose {
		level = slog.LevelDebug
	}
	switch a.logFormat {
	case "auto", "text", "json":
	default:
		return usageError(fmt.Errorf("--log-format must be auto, text or json, not %q", a.logFormat))
	}
	mode := a.progress
	if a.jsonLines() {
		mode = progress.JSON
	}
	switch a.progress {
	case progress.Auto, progress.TTY, progress.Plain, progress.Quiet:
	default:
		return usageError(fmt.Errorf("--progress must be auto, tty, plain or quiet, not %q", a.progress))
	}
	if mode != progress.JSON && progress.Resolve(mode, a.stderr) == progress.TTY && !live {
		mode = progress.Plain
	}
	r, err := progress.New(mode, a.stderr, progress.Options{Verbose: a.verbose})
	if err != nil {
		return usageError(err)
	}
	a.render = r
	a.events = event.Serialize(r.Event)
	a.log = event.NewLogger(a.events, level)
	if a.dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		a.dir = findRoot(wd)
	}
	abs, err := filepath.Abs(a.dir)
	if err != nil {
		return err
	}
	a.dir = abs
	return nil
}

// findRoot walks up from dir to the first directory holding projects/ or
// software/; it returns dir itself if there is none.
func findRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		for _, sub := range []string{"projects", "software"} {
			if st, err := os.Stat(filepath.Join(d, sub)); err == nil && st.IsDir() {
				return d
			}
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// positioned is the problems of an error that have a place in a file.
func positioned(err error) []*spec.Problem {
	problems := spec.Problems(err)
	for _, p := range problems {
		if p.File != "" {
			return problems
		}
	}
	return nil
}

// writeEnvelope prints the one JSON document of the invocation.
func (a *app) writeEnvelope(err error, code int) {
	command := a.command
	if command == "" {
		command = "coach"
	}
	out := envelope{FormatVersion: jsonFormat, Command: command, OK: err == nil, Result: a.result}
	if err != nil {
		out.Error = &errorBody{ExitCode: code, Stage: failure.StageOf(err), Message: err.Error(), Problems: positioned(err)}
		out.Error.describeFailure(err)
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// report writes a failure to stderr: every positioned problem, or the
// error.
func (a *app) report(err error) {
	problems := positioned(err)
	if len(problems) == 0 {
		fmt.Fprintf(a.stderr, "coach: %v\n", err)
		a.nextSteps(err)
		return
	}
	files := map[string]bool{}
	for _, p := range problems {
		fmt.Fprintln(a.stderr, p.Error())
		files[p.File] = true
	}
	fmt.Fprintf(a.stderr, "coach: %s in %s\n", plural(len(problems), "problem"), plural(len(files), "file"))
}

// nextSteps says, after a failed build step, what helps find out why.
func (a *app) nextSteps(err error) {
	var se *runner.StepError
	var te *pipeline.TargetsError
	if !errors.As(err, &se) || se.Component == "" || !errors.As(err, &te) {
		return
	}
	fmt.Fprintf(a.stderr, "coach: to look closer: coach build %s --keep-failed keeps %s's work directory; --debug opens a shell where the step failed (sandbox); coach shell %s %s opens one in its build environment\n",
		te.Project, se.Component, te.Project, se.Component)
}

// output records a command's result: the one JSON document prints it
// under --json; text output is the command's own. It reports whether the
// command should print its text.
func (a *app) output(v any) bool {
	a.result = v
	return !a.json
}

func (a *app) rel(path string) string {
	if r, err := filepath.Rel(a.dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// findRootOfWD is findRoot of the working directory.
func findRootOfWD() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return findRoot(wd)
}
