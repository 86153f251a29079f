// Package dagger runs builds on a Dagger engine (dagger.io/dagger). It is a
// thin adapter: the target's image with its packages installed in a cached
// step, the dependency layers as Directories at the install dir, the source
// from the host, each step a WithExec, and the layer the Diff of the install
// dir, exported to the host. Everything else is shared with the sandbox
// runner in pipeline/build. Only this package imports the Dagger SDK.
package dagger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"

	dg "dagger.io/dagger"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// Runner builds in containers on a Dagger engine.
type Runner struct {
	client *dg.Client
	mu     sync.Mutex
	bases  map[string]*dg.Container
}

var _ runner.Runner = (*Runner)(nil)

// Connect connects to the engine the usual way: inside `dagger run`
// (DAGGER_SESSION_PORT), or through the dagger CLI, which honours
// _EXPERIMENTAL_DAGGER_RUNNER_HOST. Engine progress goes to logOutput.
func Connect(ctx context.Context, logOutput io.Writer) (*Runner, error) {
	opts := []dg.ClientOpt{}
	if logOutput != nil {
		opts = append(opts, dg.WithLogOutput(logOutput))
	}
	c, err := dg.Connect(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to the Dagger engine: %w", err)
	}
	return &Runner{client: c, bases: map[string]*dg.Container{}}, nil
}

// Close ends the engine session.
func (r *Runner) Close() error { return r.client.Close() }

func (r *Runner) Name() string { return "dagger" }

// InstallCommand is the shell command that installs the toolchain and
// packages in a target's image.
func InstallCommand(t target.Target, packages []string) string {
	pkgs := append(slices.Clone(t.Toolchain), packages...)
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	list := strings.Join(pkgs, " ")
	if t.Format == target.FormatRPM {
		return "dnf -y --setopt=install_weak_deps=False install " + list + " && dnf clean all"
	}
	return "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " + list
}

// cacheDirs are the package manager caches kept across builds.
func cacheDirs(t target.Target) []string {
	if t.Format == target.FormatRPM {
		return []string{"/var/cache/dnf"}
	}
	return []string{"/var/cache/apt/archives", "/var/lib/apt/lists"}
}

func (r *Runner) Prepare(ctx context.Context, t target.Target, arch string, packages []string) error {
	if t.Image == "" {
		return fmt.Errorf("target %s has no image for the dagger runner", t.Name)
	}
	ctr := r.client.Container(dg.ContainerOpts{Platform: dg.Platform("linux/" + arch)}).From(t.Image)
	for _, d := range cacheDirs(t) {
		ctr = ctr.WithMountedCache(d, r.client.CacheVolume("coach-"+t.Name+"-"+arch+strings.ReplaceAll(d, "/", "-")))
	}
	// The engine caches this step by its inputs: the image, the command.
	ctr = ctr.WithExec([]string{"/bin/sh", "-c", InstallCommand(t, packages)})
	for _, d := range cacheDirs(t) {
		ctr = ctr.WithoutMount(d)
	}
	ctr, err := ctr.Sync(ctx)
	if err != nil {
		return fmt.Errorf("prepare %s image %s: %w", t.Name, t.Image, stepError(err, -1, "install build packages", nil))
	}
	r.mu.Lock()
	r.bases[t.Name+"/"+arch] = ctr
	r.mu.Unlock()
	return nil
}

func (r *Runner) Run(ctx context.Context, job *runner.Job) error {
	r.mu.Lock()
	base := r.bases[job.Target.Name+"/"+job.Arch]
	r.mu.Unlock()
	if base == nil {
		return fmt.Errorf("dagger: Prepare was not called for %s/%s", job.Target.Name, job.Arch)
	}
	deps := r.client.Directory()
	for _, l := range job.Layers {
		deps = deps.WithDirectory(".", r.client.Host().Directory(l, dg.HostDirectoryOpts{NoCache: true}))
	}
	ctr := base.
		WithDirectory(job.InstallDir, deps).
		WithMountedDirectory(runner.SourceMount, r.client.Host().Directory(job.Source, dg.HostDirectoryOpts{NoCache: true})).
		WithDirectory(runner.HomeDir, r.client.Directory())
	for _, kv := range job.Env {
		k, v, _ := strings.Cut(kv, "=")
		ctr = ctr.WithEnvVariable(k, v)
	}
	for i, st := range job.Steps {
		runner.WriteStepHeader(job, i)
		step := ctr.WithWorkdir(path.Join(runner.SourceMount, job.Dir, st.Dir))
		for _, kv := range st.Env {
			k, v, _ := strings.Cut(kv, "=")
			step = step.WithEnvVariable(k, v)
		}
		done, err := step.WithExec(st.Argv).Sync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return stepError(err, i, st.Name, job.Log)
		}
		if out, err := done.Stdout(ctx); err == nil {
			io.WriteString(job.Log, out)
		}
		if out, err := done.Stderr(ctx); err == nil {
			io.WriteString(job.Log, out)
		}
		for _, kv := range st.Env {
			k, _, _ := strings.Cut(kv, "=")
			done = done.WithoutEnvVariable(k)
			if v, ok := lookup(job.Env, k); ok {
				done = done.WithEnvVariable(k, v)
			}
		}
		ctr = done
	}
	layer := deps.Diff(ctr.Directory(job.InstallDir))
	if _, err := layer.Export(ctx, job.Output); err != nil {
		return fmt.Errorf("dagger: export the layer of %s: %w", job.Component, err)
	}
	return nil
}

func lookup(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// stepError turns the engine's *dg.ExecError into coach's *runner.StepError,
// writing the command's output to log. Other errors pass through.
func stepError(err error, i int, name string, log io.Writer) error {
	var ee *dg.ExecError
	if !errors.As(err, &ee) {
		return err
	}
	if log != nil {
		io.WriteString(log, ee.Stdout)
		io.WriteString(log, ee.Stderr)
	}
	return &runner.StepError{Step: i, StepName: name, ExitCode: ee.ExitCode}
}
