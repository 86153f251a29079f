//go:build !linux

package sandbox

import (
	"context"

	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/target"
)

func (r *Rootfs) installOverlay(ctx context.Context, t target.Target, arch, base, tmp string, pkgs []string) ([]string, error) {
	return nil, pidns.ErrNotLinux
}
