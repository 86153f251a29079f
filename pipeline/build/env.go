package build

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/spec"
)

// StandardEnv is the environment every build step starts from: compilers
// look in the embedded prefix first and binaries find their libraries there
// at run time through an RPATH; nothing comes from the host.
//
// SOURCE_DATE_EPOCH is a fixed time (BuildEpoch), so that tools that record
// "now" record the same thing on every build (reproducible-builds.org). It
// also makes Python compile .pyc files with source hashes instead of
// source mtimes, which packages reset (PEP 552): the interpreter then never
// rewrites the shipped .pyc files at run time.
func StandardEnv(vars spec.StepVars) map[string]string {
	emb := vars.Embedded
	return map[string]string{
		"PATH":              vars.InstallDir + "/bin:" + emb + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"CFLAGS":            "-I" + emb + "/include -O2",
		"CXXFLAGS":          "-I" + emb + "/include -O2",
		"CPPFLAGS":          "-I" + emb + "/include",
		"LDFLAGS":           "-L" + emb + "/lib -Wl,-rpath," + emb + "/lib",
		"LD_RUN_PATH":       emb + "/lib",
		"PKG_CONFIG_PATH":   emb + "/lib/pkgconfig:" + emb + "/share/pkgconfig",
		"HOME":              runner.HomeDir,
		"TMPDIR":            "/tmp",
		"LANG":              "C.UTF-8",
		"LC_ALL":            "C.UTF-8",
		"SHELL":             "/bin/sh",
		"TERM":              "dumb",
		"COACH_INSTALL_DIR": vars.InstallDir,
		"COACH_EMBEDDED":    emb,
		"COACH_JOBS":        fmt.Sprint(vars.Jobs),
		"SOURCE_DATE_EPOCH": fmt.Sprint(BuildEpoch),
	}
}

// BuildEpoch is SOURCE_DATE_EPOCH in every build step: 2020-01-01T00:00:00Z.
// It is part of what a layer is built from; changing it needs a new
// plan.KeySchema.
const BuildEpoch = 1577836800

// jobEnv is the standard environment with the definition's env applied on
// top (values are templates), as a sorted KEY=VALUE list.
//
// Plain make runs {{.Jobs}} jobs (MAKEFLAGS=-j{{.Jobs}}) unless the
// definition sets MAKEFLAGS, or the job has a job server, whose flags the
// runner puts there.
func jobEnv(vars spec.StepVars, extra spec.Env, jobserver bool) ([]string, error) {
	env := StandardEnv(vars)
	if !jobserver {
		env["MAKEFLAGS"] = fmt.Sprintf("-j%d", vars.Jobs)
	}
	own, err := expandEnv(extra, vars)
	if err != nil {
		return nil, err
	}
	maps.Copy(env, own)
	return envList(env), nil
}

// expandEnv renders a definition's env values for vars.
func expandEnv(extra spec.Env, vars spec.StepVars) (map[string]string, error) {
	out := make(map[string]string, len(extra))
	for k, v := range extra {
		x, err := spec.Expand(v, vars)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", k, err)
		}
		out[k] = x
	}
	return out, nil
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// jobSteps turns the definition's steps into runner steps: patches first,
// then each build step with its templates expanded.
func jobSteps(s *spec.Software, patches []string, vars spec.StepVars) ([]runner.Step, error) {
	var steps []runner.Step
	for _, p := range patches {
		steps = append(steps, runner.Step{
			Name: "patch " + p,
			Argv: []string{"patch", "-p1", "--forward", "--batch", "-i", runner.SourceMount + "/" + patchDir + "/" + p},
		})
	}
	for i, st := range s.Build {
		var step runner.Step
		name, err := spec.Expand(st.Label(), vars)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		step.Name = name
		step.Timeout = spec.Duration(st.Timeout)
		if st.Run != "" {
			line, err := spec.Expand(st.Run, vars)
			if err != nil {
				return nil, fmt.Errorf("step %d: %w", i+1, err)
			}
			step.Argv = []string{"/bin/sh", "-e", "-c", line}
		} else {
			for _, a := range st.Argv {
				x, err := spec.Expand(a, vars)
				if err != nil {
					return nil, fmt.Errorf("step %d: %w", i+1, err)
				}
				step.Argv = append(step.Argv, x)
			}
		}
		if step.Dir, err = spec.Expand(st.Dir, vars); err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		if len(st.Env) > 0 {
			env := map[string]string{}
			for k, v := range st.Env {
				if env[k], err = spec.Expand(v, vars); err != nil {
					return nil, fmt.Errorf("step %d: env %s: %w", i+1, k, err)
				}
			}
			step.Env = envList(env)
		}
		steps = append(steps, step)
	}
	return steps, nil
}

// label shortens a command line for progress output.
func label(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
