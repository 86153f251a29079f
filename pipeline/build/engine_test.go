package build_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/target"
)

// daggerRunner connects to the engine the environment names, or skips
// saying why. .ci/run sets an engine up when the machine has one built
// (see docs/building.md "Runners").
func daggerRunner(t *testing.T) *dagger.Runner {
	t.Helper()
	if os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") == "" && os.Getenv("DAGGER_SESSION_PORT") == "" {
		t.Skip("no Dagger engine is configured (_EXPERIMENTAL_DAGGER_RUNNER_HOST), so the engine suite is skipped; .ci/run starts one where one is built")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := dagger.Connect(ctx, nil)
	if err != nil {
		t.Fatalf("an engine is configured but does not answer: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestEngineSuite runs the sandbox's integration cases on a real Dagger
// engine: the same layers for hello, real software from Debian's orig
// tarballs, an undeclared dependency that stays invisible, a failing step,
// a deletion of a dependency's file, and an interrupted build.
func TestEngineSuite(t *testing.T) {
	r := daggerRunner(t)
	t.Run("hello", func(t *testing.T) {
		root, _ := filepath.Abs("../..")
		b := builder(t, r, root)
		res, err := buildProject(t, b, root, "hello", "debian-12")
		if err != nil {
			t.Fatal(err)
		}
		// Every component cached: no engine is needed, so a runner whose
		// engine is gone still builds.
		t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
		b.Runner = dagger.New(nil)
		again, err := buildProject(t, b, root, "hello", "debian-12")
		if err != nil {
			t.Fatalf("a fully cached build needed the engine: %v", err)
		}
		for _, c := range again.Components {
			if !c.CacheHit {
				t.Errorf("%s was rebuilt", c.Name)
			}
		}
		checkHelloLayers(t, res)
	})
	t.Run("isolation and failures", func(t *testing.T) {
		files := map[string]string{
			"software/liba.yaml":     "name: liba\nlicense: MIT\nversions: [{version: 1.0.0, path: liba}]\nbuild:\n  - mkdir -p {{.Embedded}}/include && cp a.h {{.Embedded}}/include/\n",
			"software/liba/a.h":      "#define A_VALUE 7\n",
			"software/usesa.yaml":    "name: usesa\nlicense: MIT\nversions: [{version: 1.0.0, path: usesa}]\nbuild:\n  - cc $CPPFLAGS -o usesa main.c\n  - mkdir -p {{.InstallDir}}/bin && cp usesa {{.InstallDir}}/bin/\n",
			"software/usesa/main.c":  "#include <a.h>\nint main(void){return A_VALUE-7;}\n",
			"software/deletes.yaml":  "name: deletes\nlicense: MIT\ndependencies: [liba]\nversions: [{version: 1.0.0, path: usesa}]\nbuild:\n  - rm {{.Embedded}}/include/a.h\n",
			"software/envcheck.yaml": "name: envcheck\nlicense: MIT\nversions: [{version: 1.0.0, path: usesa}]\nbuild:\n  - env | sort\n  - test -z \"$TRACEPARENT$OTEL_EXPORTER_OTLP_ENDPOINT$COACH_RUN\"\n  - printf 'out1\\n'; printf 'err1\\n' >&2; printf 'out2\\n'\n",
			"software/fails.yaml":    "name: fails\nlicense: MIT\nversions: [{version: 1.0.0, path: usesa}]\nbuild:\n  - for i in $(seq 1 3000); do echo \"line $i of a long output\"; done; exit 7\n",
			"projects/iso.yaml":      fmt.Sprintf(isoProject, "liba, usesa"),
		}
		for _, p := range []string{"deletes", "envcheck", "fails"} {
			files["projects/"+p+".yaml"] = strings.Replace(fmt.Sprintf(isoProject, p), "name: iso", "name: "+p, 1)
		}
		root := writeRepo(t, files)
		var se *runner.StepError
		_, err := buildProject(t, builder(t, r, root), root, "iso", "debian-12")
		if !asStep(err, &se) || se.Component != "usesa" || !strings.Contains(strings.Join(se.Tail, "\n"), "a.h: No such file or directory") {
			t.Errorf("an undeclared dependency was visible, or the error is wrong: %v", err)
		}
		_, err = buildProject(t, builder(t, r, root), root, "deletes", "debian-12")
		if err == nil || !strings.Contains(err.Error(), "deleted files of its dependencies") || !strings.Contains(err.Error(), "embedded/include/a.h") {
			t.Errorf("deleting a dependency's file: %v", err)
		}
		b := builder(t, r, root)
		if _, err := buildProject(t, b, root, "envcheck", "debian-12"); err != nil {
			t.Errorf("the step's environment is not exactly the job's: %v", err)
		} else {
			log, _ := os.ReadFile(filepath.Join(b.WorkDir, "logs", "envcheck.log"))
			if !strings.Contains(string(log), "out1\nerr1\nout2\n") {
				t.Errorf("stdout and stderr are not interleaved in order:\n%s", log)
			}
			if regexp.MustCompile(`(?m)^(OTEL_|TRACEPARENT=|COACH_RUN=)`).Match(log) {
				t.Errorf("the session's variables reached the step:\n%s", log)
			}
		}
		b = builder(t, r, root)
		_, err = buildProject(t, b, root, "fails", "debian-12")
		if !asStep(err, &se) || se.ExitCode != 7 {
			t.Fatalf("a failing step: %v", err)
		}
		log, _ := os.ReadFile(filepath.Join(b.WorkDir, "logs", "fails.log"))
		if !strings.Contains(string(log), "line 1 of a long output\n") || !strings.Contains(string(log), "line 3000 of a long output\n") {
			t.Errorf("the failed step's output is not whole (%d bytes)", len(log))
		}
	})
	t.Run("no volume per job", func(t *testing.T) {
		// Each job used to make a coach-log-<nonce> cache volume that
		// nothing removed; a step's output now comes back through the
		// session, with no volume at all.
		root := writeRepo(t, map[string]string{
			"software/vol.yaml":   "name: vol\nlicense: MIT\nversions: [{version: 1.0.0, path: vol}]\nbuild:\n  - echo " + fmt.Sprint(time.Now().UnixNano()) + "\n",
			"software/vol/README": "x\n",
			"projects/vol.yaml":   strings.Replace(fmt.Sprintf(isoProject, "vol"), "name: iso", "name: vol", 1),
		})
		if _, err := buildProject(t, builder(t, r, root), root, "vol", "debian-12"); err != nil {
			t.Fatal(err)
		}
		entries, err := r.CacheEntries(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.Contains(e, "coach-log-") {
				t.Errorf("a per-job log volume is left in the engine: %s", e)
			}
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		root := writeRepo(t, map[string]string{
			"software/slow.yaml":   "name: slow\nlicense: MIT\nversions: [{version: 1.0.0, path: slow}]\nbuild:\n  - mkdir -p {{.Embedded}} && echo partial > {{.Embedded}}/partial && sleep 600\n",
			"software/slow/README": "x\n",
			"projects/slow.yaml":   strings.Replace(fmt.Sprintf(isoProject, "slow"), "name: iso", "name: slow", 1),
		})
		b := builder(t, r, root)
		prep, err := project.Prepare(root, "slow", project.Options{Targets: []string{"debian-12"}})
		if err != nil {
			t.Fatal(err)
		}
		tg, _ := target.Builtin("debian-12")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := b.Build(ctx, prep.Plan, prep.Project, root, tg); err == nil {
			t.Fatal("an interrupted build succeeded")
		}
		if entries, _ := os.ReadDir(filepath.Join(filepath.Dir(b.WorkDir), "layers")); len(entries) > 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("the interrupted build committed a layer: %v", names)
		}
	})
	t.Run("real software", func(t *testing.T) {
		mirror := testroots.DebianSources(t)
		files := map[string]string{
			"projects/libs.yaml": "name: libs\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [pcre2, libyaml, xz]\n",
		}
		for _, n := range []string{"zlib", "pcre2", "libyaml", "xz"} {
			data, err := os.ReadFile(filepath.Join("../../software", n+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			files["software/"+n+".yaml"] = string(data)
		}
		root := writeRepo(t, files)
		res, err := buildProject(t, builder(t, r, root, "file://"+mirror), root, "libs", "debian-12")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Components {
			t.Logf("%-8s built in %5.1fs, %d files", c.Name, c.Seconds, c.Files)
		}
		for _, want := range []string{"embedded/lib/libz.so.1", "embedded/lib/libpcre2-8.so.0", "embedded/lib/libyaml-0.so.2", "embedded/lib/liblzma.so.5", "LICENSES/zlib/LICENSE"} {
			if _, err := os.Lstat(filepath.Join(res.Tree, "opt/libs", want)); err != nil {
				t.Errorf("the tree lacks %s", want)
			}
		}
	})
}
