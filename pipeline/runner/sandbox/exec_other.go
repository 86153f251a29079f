//go:build !linux

package sandbox

import (
	"context"

	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/runner"
)

func cleanUpper(upper string) error { return pidns.ErrNotLinux }

func interactive(ctx context.Context, args []string, layout *pidns.Layout, sh runner.Shell) error {
	return pidns.ErrNotLinux
}
