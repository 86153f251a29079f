package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/spec"
)

// app is the state shared by all commands of one invocation.
type app struct {
	stdout, stderr io.Writer
	dir            string
	json           bool
	logFormat      string
	verbose        bool
	log            *slog.Logger
}

func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if isCobraUsage(err) {
		code = exitUsage
	}
	a.report(err, code)
	return code
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
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup()
		},
	}
	f := root.PersistentFlags()
	f.StringVarP(&a.dir, "chdir", "C", "", "repository root (default: the nearest directory above . with projects/ or software/)")
	f.BoolVar(&a.json, "json", false, "write machine-readable JSON to stdout")
	f.StringVar(&a.logFormat, "log-format", "auto", "log format on stderr: auto, text or json (auto: text lines, json when --json)")
	f.BoolVarP(&a.verbose, "verbose", "v", false, "log debug detail")
	root.AddCommand(
		a.versionCommand(),
		a.validateCommand(),
		a.lockCommand(),
		a.planCommand(),
		a.targetsCommand(),
		a.newCommand(),
		a.fetchCommand(),
		a.cacheCommand(),
		a.buildCommand(),
		a.doctorCommand(),
		a.healthCommand(),
		a.packageCommand(),
		a.verifyCommand(),
	)
	return root
}

func (a *app) setup() error {
	level := slog.LevelInfo
	if a.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch a.logFormat {
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	case "text", "auto":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	default:
		return usageError(fmt.Errorf("--log-format must be auto, text or json, not %q", a.logFormat))
	}
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

// errorJSON is what --json prints on stdout when a command fails.
type errorJSON struct {
	Error struct {
		ExitCode int             `json:"exit_code"`
		Stage    string          `json:"stage,omitempty"`
		Message  string          `json:"message"`
		Problems []*spec.Problem `json:"problems,omitempty"`
	} `json:"error"`
}

func (a *app) report(err error, code int) {
	problems := spec.Problems(err)
	positioned := 0
	for _, p := range problems {
		if p.File != "" {
			positioned++
		}
	}
	if a.json {
		var out errorJSON
		out.Error.ExitCode = code
		out.Error.Stage = pipeline.FailedStage(err)
		out.Error.Message = err.Error()
		if positioned > 0 {
			out.Error.Problems = problems
		}
		a.writeJSON(out)
	}
	if positioned == 0 {
		fmt.Fprintf(a.stderr, "coach: %v\n", err)
		return
	}
	files := map[string]bool{}
	for _, p := range problems {
		fmt.Fprintln(a.stderr, p.Error())
		files[p.File] = true
	}
	fmt.Fprintf(a.stderr, "coach: %s in %s\n", plural(len(problems), "problem"), plural(len(files), "file"))
}

func (a *app) writeJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) rel(path string) string {
	if r, err := filepath.Rel(a.dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
