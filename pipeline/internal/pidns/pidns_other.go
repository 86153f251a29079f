//go:build !linux

package pidns

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
)

// ErrNotLinux is what every command fails with off Linux: the sandbox and
// the clean-root verify are Linux's (use the Dagger runner elsewhere).
var ErrNotLinux = errors.New("sandboxed commands need Linux: use --runner dagger on this system")

// Cmd is a command that cannot run here.
type Cmd struct{ *exec.Cmd }

func Command(argv []string, layout *Layout) *Cmd {
	return CommandContext(context.Background(), argv, layout)
}

func CommandContext(ctx context.Context, argv []string, layout *Layout) *Cmd {
	return &Cmd{exec.CommandContext(ctx, argv[0], argv[1:]...)}
}

func (c *Cmd) Start() error { return ErrNotLinux }
func (c *Cmd) Run() error   { return ErrNotLinux }
func (c *Cmd) CombinedOutput() ([]byte, error) {
	var b bytes.Buffer
	return b.Bytes(), ErrNotLinux
}

// Contained is exec.CommandContext where there are no namespaces.
func Contained(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// DieWithParent does nothing where there is no parent-death signal.
func DieWithParent(cmd *exec.Cmd) {}

// Session cannot run here.
type Session struct{}

func StartSession(layout *Layout, dir string, stdout io.Writer, extra ...*os.File) (*Session, error) {
	return nil, ErrNotLinux
}

func (s *Session) Run(ctx context.Context, argv []string) (int, error) { return -1, ErrNotLinux }
func (s *Session) Close() error                                        { return ErrNotLinux }
