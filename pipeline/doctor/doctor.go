// Package doctor is the registry of what coach needs on a machine. Each
// stage and runner declares its own checks beside its code, in an init
// function (as nfpm's packagers register themselves), each with a
// one-line reason (as melange's linters explain themselves); coach
// doctor runs them in order, and doctor --fix installs the Debian
// packages of the tools that are missing. The package imports nothing of
// coach's, so anything may declare a check.
package doctor

import (
	"context"
	"os/exec"
	"slices"
	"sync"
)

// Group orders the checks as doctor prints them.
type Group int

const (
	Sandbox Group = iota
	Emulation
	Dagger
	Cache
	Tools
)

// Env is what a check may need to know about the run.
type Env struct {
	// CacheDir is the cache directory checked.
	CacheDir string
	// User is true when coach runs as a user rather than root.
	User bool
}

// Result is one line of doctor's report.
type Result struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Package is the Debian package that fixes a failed check, for --fix.
	Package string `json:"package,omitempty"`
	// Runner is the runner that cannot work while this check fails.
	Runner string `json:"runner,omitempty"`
}

// Check is one thing a stage or runner needs.
type Check struct {
	// Name is the check's line ("sandbox: mmdebstrap"); a check whose Run
	// makes several lines names each of them.
	Name  string
	Group Group
	// Why is the one-line reason: what needs it, shown when it passes.
	Why string
	// Runner is the runner that cannot work without it ("" if none).
	Runner string
	// Tool is a program that must be on PATH, and Package the Debian
	// package that has it (what --fix installs when it is missing).
	Tool, Package string
	// UserOnly checks run only when coach runs as a user.
	UserOnly bool
	// Run checks more than the tool's presence (after it, when there is a
	// Tool), and returns its lines; nil for a check that is only a Tool.
	Run func(ctx context.Context, env Env) []Result
}

var (
	mu     sync.Mutex
	checks []Check
)

// Register declares checks; doctor runs them by group, then in the order
// they were registered.
func Register(cs ...Check) {
	mu.Lock()
	defer mu.Unlock()
	checks = append(checks, cs...)
}

// Checks are the registered checks, in the order doctor runs them.
func Checks() []Check {
	mu.Lock()
	defer mu.Unlock()
	out := slices.Clone(checks)
	slices.SortStableFunc(out, func(a, b Check) int { return int(a.Group) - int(b.Group) })
	return out
}

// lookPath finds tools; tests replace it.
var lookPath = exec.LookPath

// Run runs every check that applies to env.
func Run(ctx context.Context, env Env) []Result {
	var out []Result
	for _, c := range Checks() {
		if c.UserOnly && !env.User {
			continue
		}
		if c.Tool != "" {
			if _, err := lookPath(c.Tool); err != nil {
				out = append(out, Result{Name: c.Name, Detail: c.Tool + " is not installed (" + c.Why + ")",
					Fix: "apt-get install " + c.Package, Package: c.Package, Runner: c.Runner})
				continue
			}
			if c.Run == nil {
				out = append(out, Result{Name: c.Name, OK: true, Detail: c.Why, Runner: c.Runner})
				continue
			}
		}
		for _, r := range c.Run(ctx, env) {
			if r.Name == "" {
				r.Name = c.Name
			}
			if r.OK && r.Detail == "" {
				r.Detail = c.Why
			}
			out = append(out, r)
		}
	}
	return out
}

// Missing are the Debian packages of the tools env needs that are not on
// PATH, each once, in check order.
func Missing(env Env) []string {
	var out []string
	for _, c := range Checks() {
		if c.Tool == "" || c.Package == "" || (c.UserOnly && !env.User) {
			continue
		}
		if _, err := lookPath(c.Tool); err != nil && !slices.Contains(out, c.Package) {
			out = append(out, c.Package)
		}
	}
	return out
}

// Usable reports whether a runner was checked and every check it needs
// passed.
func Usable(results []Result, runner string) bool {
	seen := false
	for _, r := range results {
		if r.Runner == runner {
			if !r.OK {
				return false
			}
			seen = true
		}
	}
	return seen
}

// Pass and Fail make a check's result lines.
func Pass(name, detail string) Result { return Result{Name: name, OK: true, Detail: detail} }

// Fail is a failed line with its fix.
func Fail(name string, err error, fix string) Result {
	return Result{Name: name, Detail: err.Error(), Fix: fix}
}

// Of is a line that passes with detail when err is nil, and fails with
// err and fix otherwise.
func Of(name string, err error, detail, fix string) Result {
	if err != nil {
		return Fail(name, err, fix)
	}
	return Pass(name, detail)
}
