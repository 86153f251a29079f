package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/plan"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Shell opens sh in the build environment of one component of the plan,
// as its first step would see it: its dependencies built (or taken from the
// layer cache) and stacked at the install dir, its source fetched, unpacked
// and patched at the working directory, and the environment its steps get.
// Nothing the shell does is kept: the install dir's changes and the source
// are thrown away when it exits. A shell that exits with a status other
// than 0 is a *runner.ShellExitError.
func (b *Builder) Shell(ctx context.Context, pl *plan.Plan, p *spec.Project, root string, t target.Target, component string, sh runner.Shell) error {
	sheller, ok := b.Runner.(runner.Sheller)
	if !ok {
		return fmt.Errorf("the %s runner cannot open a shell in a build environment; use --runner sandbox", b.Runner.Name())
	}
	n := pl.Node(component)
	if n == nil {
		return fmt.Errorf("%s is not a component of %s (its components: %v)", component, p.Name, pl.Order())
	}
	if err := os.MkdirAll(b.WorkDir, 0o755); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, d := range n.Transitive {
		want[d] = true
	}
	results, err := b.buildNodes(ctx, pl, p, root, t, want)
	if err != nil {
		return fmt.Errorf("build the dependencies of %s: %w", component, err)
	}
	// Readied under the shell's own context: buildNodes' ended with it.
	if err := b.Runner.Prepare(ctx, t, pl.Arch, ComponentPackages(n, t)); err != nil {
		return fmt.Errorf("prepare %s for %s: %w", b.Runner.Name(), t.Name, err)
	}
	work := filepath.Join(b.WorkDir, "shell-"+component)
	archive.RemoveAll(work)
	defer archive.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	job, _, err := b.stageJob(ctx, pl, p, root, t, n, work, false)
	if err != nil {
		return err
	}
	job.Output, job.Scratch, job.Log = filepath.Join(work, "install"), filepath.Join(work, "scratch"), sh.Stderr
	for _, d := range []string{job.Output, job.Scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, d := range b.depLayers(pl, n, results) {
		job.Layers = append(job.Layers, d.Dir)
	}
	if sh.Prompt == "" {
		sh.Prompt = component + "@" + t.Name
		if pl.Arch != target.HostArch() {
			sh.Prompt += "-" + pl.Arch
		}
	}
	return sheller.Shell(ctx, job, sh)
}
