package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/doctor"
	"github.com/coach-build/coach/pipeline/runner/sandbox"

	// Each declares its checks (doctor.Register) in an init function.
	_ "github.com/coach-build/coach/pipeline/binfmt"
	_ "github.com/coach-build/coach/pipeline/pkg"
	_ "github.com/coach-build/coach/pipeline/runner/dagger"
)

type doctorJSON struct {
	Runners map[string]bool `json:"runners"`
	Checks  []doctor.Result `json:"checks"`
}

func (a *app) doctorCommand() *cobra.Command {
	var cacheDir string
	var fix bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say which runners are usable here, and if one is not, why and how to fix it",
		Long: `doctor checks what coach needs on this machine: the sandbox runner's host tools
(bubblewrap, mmdebstrap), each target's package mirror, emulation of the other
architecture, a Dagger engine, the cache directory and the tools packaging
uses. Each stage and runner declares its own checks (package pipeline/doctor).

With --fix it installs the missing host tools with apt-get: directly as root,
through sudo otherwise. It says which packages before it runs anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cacheDir == "" {
				cacheDir = cache.DefaultDir()
			}
			if fix {
				if err := a.installHostTools(cmd.Context(), doctor.Missing(doctor.Env{User: os.Geteuid() != 0})); err != nil {
					return err
				}
				if os.Geteuid() == 0 {
					ids, wrote, err := sandbox.RegisterIDs()
					if err != nil {
						return err
					}
					if wrote {
						fmt.Fprintf(a.stderr, "coach doctor --fix: registered %s for coach's sandboxes in /etc/subuid and /etc/subgid\n", ids)
					}
				}
			}
			env := doctor.Env{CacheDir: cacheDir, User: os.Geteuid() != 0}
			checks := doctor.Run(cmd.Context(), env)
			sandboxOK, daggerOK := doctor.Usable(checks, "sandbox"), doctor.Usable(checks, "dagger")
			out := doctorJSON{Runners: map[string]bool{"sandbox": sandboxOK, "dagger": daggerOK}, Checks: checks}
			if a.output(out) {
				for _, c := range checks {
					mark := "ok  "
					if !c.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(a.stdout, "%s %-32s %s\n", mark, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(a.stdout, "     %-32s fix: %s\n", "", c.Fix)
					}
				}
				fmt.Fprintf(a.stdout, "runners: sandbox %s, dagger %s\n", usable(sandboxOK), usable(daggerOK))
			}
			if !sandboxOK && !daggerOK {
				return errors.New("no runner is usable here")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "cache directory to check")
	cmd.Flags().BoolVar(&fix, "fix", false, "install the missing host tools with apt-get (as root, or through sudo), then check")
	return cmd
}

func usable(ok bool) string {
	if ok {
		return "usable"
	}
	return "NOT usable"
}
