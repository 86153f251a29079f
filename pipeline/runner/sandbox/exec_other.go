//go:build !linux

package sandbox

import (
	"context"
	"os"

	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/runner"
)

// exec cannot run a sandbox here: bubblewrap and its namespaces are Linux's.
func (r *Runner) exec(ctx context.Context, job *runner.Job, args []string, layout *pidns.Layout, extra ...*os.File) error {
	return pidns.ErrNotLinux
}

func cleanUpper(upper string) error { return pidns.ErrNotLinux }

func interactive(ctx context.Context, args []string, layout *pidns.Layout, sh runner.Shell) error {
	return pidns.ErrNotLinux
}
