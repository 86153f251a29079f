// Package binfmt says whether this machine can run another architecture's
// programs: the kernel's binfmt_misc with a qemu-user interpreter
// registered for it, with the F flag (the interpreter is opened at
// registration, so it runs inside any root, a sandbox's included).
package binfmt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/coach-build/coach/pipeline/target"
)

// Dir is where the kernel shows binfmt_misc.
const Dir = "/proc/sys/fs/binfmt_misc"

// Path is the binfmt_misc directory to read: $COACH_BINFMT_MISC when set
// (tests point it at a fake one), else Dir.
func Path() string {
	if d := os.Getenv("COACH_BINFMT_MISC"); d != "" {
		return d
	}
	return Dir
}

// Machine is qemu's and binfmt's name for a Go architecture.
func Machine(goarch string) string { return target.LookupArch(goarch).Qemu }

// Interpreter is a registered binfmt_misc entry.
type Interpreter struct {
	Name        string `json:"name"`
	Enabled     bool   `json:"enabled"`
	Interpreter string `json:"interpreter"`
	Flags       string `json:"flags"`
}

// Fixed reports whether the interpreter was opened at registration (F),
// which a sandboxed or chrooted step needs: its root has no qemu.
func (i Interpreter) Fixed() bool { return strings.Contains(i.Flags, "F") }

// ErrNotMounted is binfmt_misc missing from dir.
var ErrNotMounted = errors.New("binfmt_misc is not mounted")

// List reads the registered interpreters in dir (Dir on a real machine).
func List(dir string) ([]Interpreter, error) {
	if _, err := os.Stat(filepath.Join(dir, "register")); err != nil {
		return nil, ErrNotMounted
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Interpreter
	for _, e := range entries {
		if e.Name() == "register" || e.Name() == "status" || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		in := Interpreter{Name: e.Name()}
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case line == "enabled":
				in.Enabled = true
			case strings.HasPrefix(line, "interpreter "):
				in.Interpreter = strings.TrimPrefix(line, "interpreter ")
			case strings.HasPrefix(line, "flags: "):
				in.Flags = strings.TrimPrefix(line, "flags: ")
			}
		}
		out = append(out, in)
	}
	return out, nil
}

// Fix is what to run so that this machine runs goarch's programs.
func Fix(goarch string) string {
	return fmt.Sprintf("mount -t binfmt_misc binfmt_misc %s (if it is not mounted); apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-%s", Dir, Machine(goarch))
}

// CanRun says whether programs of goarch run here: natively, or through
// an enabled qemu interpreter with the F flag in dir. The error says what
// is missing and the exact fix.
func CanRun(dir, goarch string) error {
	if goarch == runtime.GOARCH || goarch == "" {
		return nil
	}
	list, err := List(dir)
	if err != nil {
		return fmt.Errorf("%s programs cannot run on this %s machine: %w; fix: %s", goarch, runtime.GOARCH, err, Fix(goarch))
	}
	want := "qemu-" + Machine(goarch)
	for _, in := range list {
		if in.Name != want {
			continue
		}
		switch {
		case !in.Enabled:
			return fmt.Errorf("%s programs cannot run here: the %s interpreter is registered but disabled; fix: update-binfmts --enable %s", goarch, want, want)
		case !in.Fixed():
			return fmt.Errorf("%s programs cannot run in a sandbox here: %s is registered without the F flag (flags %q), so a root without qemu cannot use it; fix: install qemu-user-static (which registers with F), or register %s again with F", goarch, want, in.Flags, want)
		}
		return nil
	}
	return fmt.Errorf("%s programs cannot run on this %s machine: no %s interpreter is registered in %s; fix: %s", goarch, runtime.GOARCH, want, dir, Fix(goarch))
}
