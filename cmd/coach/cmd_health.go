package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/project"
)

func (a *app) healthCommand() *cobra.Command {
	var req pipeline.HealthRequest
	var sf sourceFlags
	var arches []string
	cmd := &cobra.Command{
		Use:   "health <project | dir>",
		Short: "Check the linkage of a tree: every ELF file, every library it needs",
		Long: `health reads every ELF file of a tree with debug/elf, resolves each
DT_NEEDED entry as ld.so would on the target, and fails libraries that
resolve outside the install dir unless the target's allowlist names them,
libraries that do not resolve, and symbol versions a library does not define.

With a project of the repository, it checks the tree of the project's last
build for each --target (default: the project's first). Otherwise, with a
directory, it checks that directory as the install dir (or as the contents
of --install-dir), against this host's libraries (or --sysroot, or the
sandbox root filesystem of each --target).`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeProjects,
		Annotations:       map[string]string{"live": "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Root, req.CacheDir, req.Log, req.Events = a.dir, sf.cache(), a.log, a.events
			if a.isProject(args[0]) {
				req.Project = args[0]
			} else if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
				req.Dir = args[0]
			} else {
				req.Project = args[0] // says why it is neither
			}
			if req.Runpath != "" && req.Runpath != health.Warning && req.Runpath != health.Error {
				return usageError(fmt.Errorf("--runpath %q: give warning or error", req.Runpath))
			}
			if req.Dir != "" && len(arches) > 0 {
				return usageError(fmt.Errorf("-a picks the builds of a project to check; a directory's files have their own architecture"))
			}
			// Each architecture's tree, in turn (the machine's alone
			// without -a).
			var reps []*health.Report
			each := arches
			if len(each) == 0 {
				each = []string{""}
			}
			for _, arch := range each {
				req.Arch = arch
				r, err := pipeline.Health(ctx, req)
				if err != nil {
					return err
				}
				reps = append(reps, r...)
			}
			if a.output(reps) {
				for _, rep := range reps {
					rep.WriteText(a.stdout)
				}
			}
			errors := 0
			for _, rep := range reps {
				errors += rep.Errors
			}
			if errors > 0 {
				return withCode(exitHealth, fmt.Errorf("health check failed: %d errors", errors))
			}
			return nil
		},
	}
	f := cmd.Flags()
	a.targetFlag(cmd, &req.Targets, "target to judge by (repeatable; default: the project's first, or this host's for a directory)")
	a.archFlag(cmd, &arches, "check the project's builds of these architectures, amd64 or arm64 (repeatable; default: this machine's)")
	f.StringVar(&req.InstallDir, "install-dir", "", "where the directory is at run time (default: the directory itself)")
	f.StringVar(&req.Sysroot, "sysroot", "", "root filesystem of the target to resolve system libraries in (default: / for this host's target, else the sandbox's)")
	f.StringArrayVar(&req.Allow, "allow", nil, "extra allowed soname glob (repeatable)")
	f.StringArrayVar(&req.Ignore, "ignore", nil, "glob of files to skip, relative to the install dir (repeatable)")
	f.StringVar(&req.Runpath, "runpath", "", "how an RPATH/RUNPATH entry outside the install dir counts: warning or error (default: the project's health.runpath, else warning)")
	sf.registerCache(f)
	return cmd
}

// isProject reports whether name is a project of the repository (-C or
// the nearest above the working directory).
func (a *app) isProject(name string) bool {
	if filepath.Base(name) != name {
		return false
	}
	repo, err := project.Load(a.dir)
	if err != nil {
		return false
	}
	_, err = repo.Project(name)
	return err == nil
}
