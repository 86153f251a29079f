package dagger

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/doctor"
	"github.com/coach-build/coach/pipeline/target"
)

func init() {
	doctor.Register(doctor.Check{Name: "dagger: engine", Group: doctor.Dagger, Run: engineChecks})
}

// engineChecks query the engine, pull each target's image and run a
// probe program of each architecture.
func engineChecks(ctx context.Context, _ doctor.Env) []doctor.Result {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var images []string
	for _, name := range target.BuiltinNames() {
		if t, _ := target.Builtin(name); t.Image != "" && !slices.Contains(images, t.Image) {
			images = append(images, t.Image)
		}
	}
	dr := New(nil)
	defer dr.Close()
	version, failed, err := dr.Ping(ctx, images)
	if err != nil {
		r := doctor.Fail("dagger: engine", err, "start an engine and set _EXPERIMENTAL_DAGGER_RUNNER_HOST (unix://, tcp://), or run coach under `dagger run`")
		r.Runner = "dagger"
		return []doctor.Result{r}
	}
	out := []doctor.Result{{Name: "dagger: engine", OK: true, Detail: Engine() + " answered, version " + version, Runner: "dagger"}}
	for _, img := range images {
		out = append(out, doctor.Of("dagger: image "+img, failed[img], "pulled", "make the registry reachable from the engine, or set image in a custom target to a mirror"))
	}
	native, failedArch, err := dr.Platforms(ctx, target.Arches)
	if err != nil {
		return append(out, doctor.Fail("dagger: emulation", err, ""))
	}
	for _, arch := range target.Arches {
		platform := target.LookupArch(arch).OCIPlatform()
		if strings.HasSuffix(native, "/"+arch) {
			out = append(out, doctor.Pass("dagger: "+platform, "the engine's own platform"))
			continue
		}
		out = append(out, doctor.Of("dagger: "+platform, failedArch[arch], "the engine ("+native+") runs "+platform+" programs under emulation", ""))
	}
	return out
}
