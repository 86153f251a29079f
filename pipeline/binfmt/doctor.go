package binfmt

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/coach-build/coach/pipeline/doctor"
	"github.com/coach-build/coach/pipeline/target"
)

// Other architectures run under qemu-user through binfmt_misc.
func init() {
	foreign := target.LookupArch(target.Foreign())
	doctor.Register(
		doctor.Check{Name: "emulation: binfmt_misc", Group: doctor.Emulation, Run: listCheck},
		doctor.Check{Name: "emulation: " + foreign.Go, Group: doctor.Emulation, Run: archChecks},
		doctor.Check{Name: "emulation: qemu-" + foreign.Qemu + "-static", Group: doctor.Emulation, Tool: "qemu-" + foreign.Qemu + "-static", Package: "qemu-user-static",
			Why: "runs " + foreign.Go + " programs (registered with the F flag, it runs inside any root)"},
		doctor.Check{Name: "emulation: update-binfmts", Group: doctor.Emulation, Tool: "update-binfmts", Package: "binfmt-support",
			Why: "registers qemu's interpreters with binfmt_misc at boot"},
	)
}

// listCheck says what binfmt_misc has registered for coach's arches.
func listCheck(context.Context, doctor.Env) []doctor.Result {
	dir := Path()
	list, err := List(dir)
	if err != nil {
		return []doctor.Result{doctor.Fail("", err, "mount -t binfmt_misc binfmt_misc "+Dir)}
	}
	var names []string
	others := 0
	for _, in := range list {
		if !in.Enabled || !strings.HasPrefix(in.Name, "qemu-") {
			continue
		}
		if slices.ContainsFunc(target.Arches, func(a string) bool { return in.Name == "qemu-"+Machine(a) }) {
			names = append(names, in.Name+" (flags "+in.Flags+")")
		} else {
			others++
		}
	}
	detail := fmt.Sprintf("mounted at %s; %s", dir, cmp.Or(strings.Join(names, ", "), "no interpreter for "+strings.Join(target.Arches, " or ")))
	if others > 0 {
		detail += fmt.Sprintf(", and %d other qemu interpreters", others)
	}
	return []doctor.Result{doctor.Pass("", detail)}
}

// archChecks: each architecture coach builds for but the host's runs.
func archChecks(context.Context, doctor.Env) []doctor.Result {
	var out []doctor.Result
	for _, arch := range target.Arches {
		if arch == target.HostArch() {
			continue
		}
		r := doctor.Of("emulation: "+arch, CanRun(Path(), arch), arch+" programs run here under qemu-user, in the sandbox too", Fix(arch))
		if !r.OK {
			r.Package = "qemu-user-static"
		}
		out = append(out, r)
	}
	return out
}
