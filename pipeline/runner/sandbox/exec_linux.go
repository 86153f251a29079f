package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/runner"
)

// interactive runs an interactive command, as exec does, with the shell's
// stdio. When its stdin is a terminal the command's process group is put
// in the terminal's foreground (so that it can read it and take signals
// from it), and coach's own group is put back there afterwards. A command
// that exits with a status other than 0 is a *runner.ShellExitError.
func interactive(ctx context.Context, args []string, layout *pidns.Layout, sh runner.Shell) error {
	cmd := pidns.CommandContext(ctx, args, layout)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sh.Stdin, sh.Stdout, sh.Stderr
	tty := sh.Stdin != nil && term.IsTerminal(int(sh.Stdin.Fd()))
	if tty {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = 0 // the child's stdin
		signal.Ignore(unix.SIGTTOU)
		defer func() {
			// Take the terminal back, whatever the shell left it in.
			unix.IoctlSetPointerInt(int(sh.Stdin.Fd()), unix.TIOCSPGRP, unix.Getpgrp())
			signal.Reset(unix.SIGTTOU)
		}()
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return &runner.ShellExitError{Code: ee.ExitCode()}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// cleanUpper turns an overlay upper dir into a plain layer. A whiteout
// (the build deleted a dependency's file) or an opaque directory (it
// replaced a dependency's directory) cannot be expressed by a layer that is
// merged with the others, so both are errors naming the paths.
func cleanUpper(upper string) error {
	var deleted []string
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if d.Type()&fs.ModeCharDevice != 0 {
			deleted = append(deleted, rel)
			return os.Remove(p)
		}
		if d.IsDir() {
			for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
				if sz, err := unix.Lgetxattr(p, attr, nil); err == nil && sz > 0 {
					unix.Lremovexattr(p, attr)
					deleted = append(deleted, rel+"/ (replaced)")
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(deleted) > 0 {
		return fmt.Errorf("the build deleted or replaced files of its dependencies, which a layer cannot do: %s", strings.Join(deleted, ", "))
	}
	return nil
}
