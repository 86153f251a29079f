// Package fake is a runner for tests: it runs no commands, records what it
// was asked to do and when, and writes the files it is told to as each
// component's layer.
package fake

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// Runner is the fake. The zero value builds every component into
// embedded/share/<component>/built.
type Runner struct {
	// Outputs maps a component to the files (path under install_dir ->
	// content) its build writes.
	Outputs map[string]map[string]string
	// FailAt maps a component to the step index that fails with exit code 2.
	FailAt map[string]int
	// Delay is how long each build takes; it ends early when ctx is done.
	Delay time.Duration
	// Print maps a component to what each of its steps prints.
	Print map[string]string
	// PrepareTakes is how long Prepare takes (making a root filesystem):
	// it honours its context meanwhile, as the sandbox's does.
	PrepareTakes time.Duration

	mu       sync.Mutex
	calls    []Call
	prepared []string
	shells   []string
}

// Call records one Run.
type Call struct {
	Component string
	Target    string
	Start     time.Time
	End       time.Time
	Layers    []string
	Job       runner.Job
}

var (
	_ runner.Runner      = (*Runner)(nil)
	_ runner.Sheller     = (*Runner)(nil)
	_ runner.Environment = (*Runner)(nil)
)

func (r *Runner) Name() string { return "fake" }

func (r *Runner) Prepare(ctx context.Context, t target.Target, arch string, packages []string) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.PrepareTakes):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prepared = append(r.prepared, fmt.Sprintf("%s/%s %v", t.Name, arch, packages))
	return nil
}

func (r *Runner) Run(ctx context.Context, job *runner.Job) error {
	call := Call{Component: job.Component, Target: job.Target.Name, Start: time.Now(), Layers: slices.Clone(job.Layers), Job: *job}
	defer func() {
		call.End = time.Now()
		r.mu.Lock()
		r.calls = append(r.calls, call)
		r.mu.Unlock()
	}()
	for i, st := range job.Steps {
		job.StartStep(i)
		fmt.Fprintf(job.Log, "fake: %v\n", st.Argv)
		io.WriteString(job.Log, r.Print[job.Component])
		if at, ok := r.FailAt[job.Component]; ok && at == i {
			fmt.Fprintf(job.Log, "error: step %d of %s failed on purpose\n", i+1, job.Component)
			return &runner.StepError{Step: i, StepName: st.Name, ExitCode: 2}
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.Delay):
	}
	files := r.Outputs[job.Component]
	if files == nil {
		files = map[string]string{filepath.Join("embedded/share", job.Component, "built"): job.Version + "\n"}
	}
	for name, body := range files {
		p := filepath.Join(job.Output, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Calls returns the recorded runs in the order they finished.
func (r *Runner) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Built lists the components built, sorted.
func (r *Runner) Built() []string {
	var out []string
	for _, c := range r.Calls() {
		out = append(out, c.Component)
	}
	slices.Sort(out)
	return out
}

// Prepared lists the Prepare calls as "target/arch [packages]".
func (r *Runner) Prepared() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.prepared)
}

// EnvironmentID is the fake's build environment: like the sandbox's root
// filesystem, one per target, arch and package set.
func (r *Runner) EnvironmentID(t target.Target, arch string, packages []string) string {
	return fmt.Sprintf("fake %s/%s %v", t.Name, arch, packages)
}

// Shell runs nothing: it records that a shell was opened in the job's
// environment, with its argv.
func (r *Runner) Shell(ctx context.Context, job *runner.Job, sh runner.Shell) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shells = append(r.shells, job.Component)
	return nil
}

// Shells lists the components shells were opened for.
func (r *Runner) Shells() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.shells)
}
