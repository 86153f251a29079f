package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// hostTarget guesses the catalogue target of this host from os-release.
func hostTarget() (target.Target, bool) {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return target.Target{}, false
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kv[k] = strings.Trim(v, `"`)
		}
	}
	major, _, _ := strings.Cut(kv["VERSION_ID"], ".")
	var name string
	switch kv["ID"] {
	case "debian":
		name = "debian-" + major
	case "ubuntu":
		name = "ubuntu-" + kv["VERSION_ID"]
	case "rhel", "almalinux", "rocky", "centos":
		name = "el" + major
	case "amzn":
		name = "amazonlinux-" + kv["VERSION_ID"]
	}
	return target.Builtin(name)
}

type healthFlags struct {
	target     string
	installDir string
	sysroot    string
	allow      []string
	ignore     []string
	cacheDir   string
}

func (a *app) healthCommand() *cobra.Command {
	var hf healthFlags
	cmd := &cobra.Command{
		Use:   "health <dir | project>",
		Short: "Check the linkage of a tree: every ELF file, every library it needs",
		Long: `health reads every ELF file of a tree with debug/elf, resolves each
DT_NEEDED entry as ld.so would on the target, and fails libraries that
resolve outside the install dir unless the target's allowlist names them,
libraries that do not resolve, and symbol versions a library does not define.

With a directory, it checks that directory as the install dir (or as the
contents of --install-dir), against this host's libraries (or --sysroot, or
the sandbox root filesystem of --target). With a project, it checks the tree
of the project's last build for --target.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := a.runHealth(args[0], hf)
			if err != nil {
				return err
			}
			if a.json {
				a.writeJSON(rep)
			} else {
				rep.WriteText(a.stdout)
			}
			if !rep.OK() {
				return withCode(exitHealth, fmt.Errorf("health check failed: %d errors", rep.Errors))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&hf.target, "target", "t", "", "target to judge by (default: this host's, or the project's first)")
	f.StringVar(&hf.installDir, "install-dir", "", "where the directory is at run time (default: the directory itself)")
	f.StringVar(&hf.sysroot, "sysroot", "", "root filesystem of the target to resolve system libraries in (default: / for this host's target, else the sandbox's)")
	f.StringArrayVar(&hf.allow, "allow", nil, "extra allowed soname glob (repeatable)")
	f.StringArrayVar(&hf.ignore, "ignore", nil, "glob of files to skip, relative to the install dir (repeatable)")
	f.StringVar(&hf.cacheDir, "cache-dir", "", "cache directory (for project builds and root filesystems)")
	return cmd
}

func (a *app) runHealth(arg string, hf healthFlags) (*health.Report, error) {
	cacheDir := hf.cacheDir
	if cacheDir == "" {
		cacheDir = defaultCacheDir()
	}
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		dir, _ := filepath.Abs(arg)
		opts := health.Options{Tree: dir, InstallDir: dir, Allow: hf.allow, Ignore: hf.ignore, Arch: runtime.GOARCH}
		if hf.installDir != "" {
			opts.InstallDir = hf.installDir
		}
		host, isHost := hostTarget()
		switch {
		case hf.target == "" && isHost:
			opts.Target, opts.Sysroot = host, "/"
		case hf.target == "":
			return nil, usageError(errors.New("this host is not in the target catalogue: give --target"))
		default:
			t, ok := target.Builtin(hf.target)
			if !ok {
				return nil, usageError(fmt.Errorf("unknown target %q (coach targets)", hf.target))
			}
			opts.Target = t
			if isHost && host.Name == t.Name {
				opts.Sysroot = "/"
			}
		}
		if hf.sysroot != "" {
			opts.Sysroot = hf.sysroot
		} else if opts.Sysroot == "" {
			opts.Sysroot = a.targetSysroot(opts.Target, cacheDir)
		}
		return health.Check(opts)
	}
	// A project: the tree of its last build.
	repo, err := pipeline.Load(a.dir)
	if err != nil {
		return nil, err
	}
	p, err := repo.Project(arg)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s is neither a directory nor a project: %w", arg, err))
	}
	tname := hf.target
	if tname == "" {
		tname = p.Targets[0]
	}
	t, err := p.Target(tname)
	if err != nil {
		return nil, usageError(err)
	}
	workDir := filepath.Join(cacheDir, "work", p.Name, t.Name)
	unlock, err := build.LockWork(context.Background(), workDir, a.log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res, err := build.ReadResult(workDir)
	if err != nil {
		return nil, usageError(fmt.Errorf("no build of %s for %s in %s: run coach build %s -t %s first", p.Name, t.Name, cacheDir, p.Name, t.Name))
	}
	sysroot := hf.sysroot
	if sysroot == "" {
		sysroot = a.targetSysroot(t, cacheDir)
	}
	return checkBuild(res, p, t, sysroot, hf.allow, hf.ignore)
}

// targetSysroot is the sandbox's clean root filesystem of a target, made if
// needed, or "" (judge system libraries by name) where there is none.
func (a *app) targetSysroot(t target.Target, cacheDir string) string {
	if t.Bootstrap.Tool == "" {
		a.log.Warn("no root filesystem for this target here; system libraries are judged by name only", "target", t.Name)
		return ""
	}
	rf := &sandbox.Rootfs{Dir: rootfsDir(cacheDir), Logger: a.log}
	dir, err := rf.Ensure(context.Background(), t, runtime.GOARCH, nil)
	if err != nil {
		a.log.Warn("cannot make the target's root filesystem; system libraries are judged by name only", "target", t.Name, "err", err)
		return ""
	}
	return dir
}

// checkBuild runs the health check on a build's merged tree.
func checkBuild(res *build.Result, p *spec.Project, t target.Target, sysroot string, allow, ignore []string) (*health.Report, error) {
	files, libs, err := res.Owners()
	if err != nil {
		return nil, err
	}
	return health.Check(health.Options{
		Tree: res.InstallTree(), InstallDir: p.InstallDir, Sysroot: sysroot, Target: t, Arch: runtime.GOARCH,
		Allow: append(append([]string{}, p.Health.Allow...), allow...), Ignore: append(append([]string{}, p.Health.Ignore...), ignore...),
		Owner: func(rel string) string { return files[rel] }, Providers: libs,
	})
}
