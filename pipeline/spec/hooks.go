package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coach-build/coach/pipeline/target"
)

// loadHooks finds scripts/<project>/<hook>[.<format>|.<target>] for every
// project and checks that each is a known hook, executable, and starts with
// an interpreter line.
func (r *Repo) loadHooks(ps *problems) error {
	dir := filepath.Join(r.Root, "scripts")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rel := filepath.Join("scripts", e.Name())
		p := r.Projects[e.Name()]
		if p == nil {
			ps.add(Pos{File: rel}, fmt.Sprintf("remove it, or create projects/%s.yaml", e.Name()), "hook directory for a project that does not exist")
			continue
		}
		files, err := os.ReadDir(filepath.Join(r.Root, rel))
		if err != nil {
			return err
		}
		p.Hooks = map[string]string{}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".") {
				continue
			}
			file := filepath.Join(rel, f.Name())
			if msg, hint := checkHookName(f.Name(), p); msg != "" {
				ps.add(Pos{File: file}, hint, "%s", msg)
				continue
			}
			info, err := os.Stat(filepath.Join(r.Root, file))
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				ps.add(Pos{File: file}, "hooks must be regular files", "hook is not a regular file")
				continue
			}
			if info.Mode().Perm()&0o111 == 0 {
				ps.add(Pos{File: file}, "chmod +x "+file, "hook is not executable")
			}
			head := make([]byte, 2)
			if fh, err := os.Open(filepath.Join(r.Root, file)); err == nil {
				n, _ := fh.Read(head)
				fh.Close()
				if n < 2 || string(head) != "#!" {
					ps.add(Pos{File: file, Line: 1, Col: 1}, "start it with #!/bin/sh", "hook has no interpreter line")
				}
			}
			p.Hooks[f.Name()] = file
		}
	}
	return nil
}

// checkHookName returns a message and hint when name is not a hook file name
// this project can use.
func checkHookName(name string, p *Project) (msg, hint string) {
	base, suffix, _ := strings.Cut(name, ".")
	if !slices.Contains(Hooks, base) {
		return fmt.Sprintf("%q is not a hook", name), "hooks are " + strings.Join(Hooks, ", ") + ", optionally with a .deb, .rpm or .<target> suffix"
	}
	rpmOnly := base == "pretrans" || base == "posttrans"
	switch {
	case suffix == "":
	case slices.Contains(target.Formats, suffix):
		if rpmOnly && suffix != target.FormatRPM {
			return fmt.Sprintf("%s exists only in rpm", base), "rename it to " + base + ".rpm or remove it"
		}
	default:
		_, builtin := target.Builtin(suffix)
		_, custom := p.CustomTargets[suffix]
		if !builtin && !custom {
			return fmt.Sprintf("hook suffix %q is neither a format nor a target", suffix), "use .deb, .rpm or a target name such as .debian-12"
		}
		if !slices.Contains(p.Targets, suffix) {
			return fmt.Sprintf("hook for target %s, which the project does not build", suffix), "add " + suffix + " to targets or remove the file"
		}
	}
	return "", ""
}
