package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jsonFixture is a repository with a project built from a path source (no
// network, no compiler: a shell script) and one whose build step fails.
var jsonFixture = map[string]string{
	"projects/app.yaml": `name: app
description: A small app
maintainer: M <m@example.com>
license: MIT
version: 1.0.0
software: [app]
targets: [debian-12]
`,
	"projects/broken.yaml": `name: broken
description: A build that fails
maintainer: M <m@example.com>
license: MIT
version: 1.0.0
software: [broken, sibling]
targets: [debian-12]
`,
	"projects/remote.yaml": `name: remote
description: A source that is not cached
maintainer: M <m@example.com>
license: MIT
version: 1.0.0
software: [zlib]
targets: [debian-12]
`,
	"software/app.yaml": `name: app
license: MIT
versions: [{version: 1.0.0, path: app}]
build_packages: {deb: [autoconf, automake, libtool]}
build:
  - mkdir -p {{.InstallDir}}/bin && cp app.sh {{.InstallDir}}/bin/app && chmod 0755 {{.InstallDir}}/bin/app
`,
	"software/app/app.sh": "#!/bin/sh\necho app\n",
	"software/broken.yaml": `name: broken
license: MIT
versions: [{version: 1.0.0, path: broken}]
build:
  - sleep 1
  - echo about to fail; exit 3
`,
	"software/broken/README": "nothing\n",
	// Built beside broken, and stopped when broken fails: cancelled, not
	// failed.
	"software/sibling.yaml": `name: sibling
license: MIT
versions: [{version: 1.0.0, path: broken}]
build:
  - sleep 60
`,
	"software/zlib.yaml": `name: zlib
license: Zlib
versions:
  - version: 1.3.1
    url: https://upstream.invalid/zlib-1.3.1.tar.gz
    sha256: 9a93b2b7dfdac77ceba5a558a580e74667dd6fede4585b91eefb60f03b72df23
build: [make install]
`,
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// oneDocument parses out as exactly one JSON document with the envelope's
// fields, or fails.
func oneDocument(t *testing.T, out []byte) envelopeIn {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	var doc envelopeIn
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, out)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON document (then %q, %v):\n%s", extra, err, out)
	}
	return doc
}

type envelopeIn struct {
	FormatVersion *int            `json:"format_version"`
	Command       string          `json:"command"`
	OK            bool            `json:"ok"`
	Result        json.RawMessage `json:"result"`
	Error         *struct {
		ExitCode  int    `json:"exit_code"`
		Message   string `json:"message"`
		Target    string `json:"target"`
		Component string `json:"component"`
		Step      *struct {
			Index int    `json:"index"`
			Name  string `json:"name"`
		} `json:"step"`
		StepExitCode *int   `json:"step_exit_code"`
		Log          string `json:"log"`
	} `json:"error"`
}

// TestJSONContract runs every command that has --json once failing and
// once succeeding, and checks that stdout is exactly one document each
// time, with the format version, ok, and on failure the exit code.
func TestJSONContract(t *testing.T) {
	repo := t.TempDir()
	writeTree(t, repo, jsonFixture)
	cache := t.TempDir()
	local := t.TempDir()
	for name, body := range jsonFixture {
		if !strings.Contains(name, "remote") && !strings.Contains(name, "zlib") {
			writeTree(t, local, map[string]string{name: body})
		}
	}
	bad := t.TempDir()
	writeTree(t, bad, map[string]string{"projects/x.yaml": "name: x\nversion: [\n"})
	// A tree that needs a library the target does not allow.
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	if data, err := os.ReadFile("/bin/ls"); err == nil {
		os.WriteFile(filepath.Join(tree, "bin", "ls"), data, 0o755)
	}
	os.Setenv("COACH_ROOTFS_DIR", testRootfsDir())
	sandbox := hasTools("bwrap", "mmdebstrap", "dpkg-deb")
	noTools := t.TempDir()

	type tc struct {
		name    string
		args    []string
		want    int
		sandbox bool              // needs the sandbox runner
		env     map[string]string // set for the case
	}
	C := []string{"-C", repo, "--json"}
	cd := "--cache-dir=" + cache
	cases := []tc{
		{"validate ok", append(C, "validate"), 0, false, nil},
		{"validate bad", []string{"-C", bad, "--json", "validate"}, exitInvalid, false, nil},
		{"lock check missing", append(C, "lock", "app", "--check"), exitResolve, false, nil},
		{"lock ok", append(C, "lock", "app", "broken", "remote"), 0, false, nil},
		{"plan ok", append(C, "plan", "app"), 0, false, nil},
		{"plan unknown", append(C, "plan", "nosuch"), exitUsage, false, nil},
		{"targets ok", append(C, "targets"), 0, false, nil},
		{"targets unknown", append(C, "targets", "nosuch"), exitUsage, false, nil},
		{"new ok", append(C, "new", "software", "extra"), 0, false, nil},
		{"new exists", append(C, "new", "software", "extra"), exitUsage, false, nil},
		{"fetch ok", append(C, "fetch", "app", cd), 0, false, nil},
		{"fetch offline", append(C, "fetch", "remote", "--offline", cd), exitFetch, false, nil},
		{"cache missing ok", append(C, "cache", "missing", "app", cd), 0, false, nil},
		{"cache missing some", append(C, "cache", "missing", "remote", cd), exitFetch, false, nil},
		{"cache populate ok", []string{"-C", local, "--json", "cache", "populate", "--dir", t.TempDir(), "--offline", cd}, 0, false, nil},
		{"cache populate offline", append(C, "cache", "populate", "--dir", t.TempDir(), "--offline", cd), exitFetch, false, nil},
		{"cache populate no dir", append(C, "cache", "populate", cd), exitUsage, false, nil},
		{"cache gc ok", append(C, "cache", "gc", "--dry-run", cd), 0, false, nil},
		{"cache gc bad repo", []string{"-C", bad, "--json", "cache", "gc", cd}, exitInvalid, false, nil},
		{"health tree fails", append(C, "health", tree, "-t", "debian-12", "--sysroot", "/"), exitHealth, false, nil},
		{"health tree ok", append(C, "health", tree, "-t", "debian-12", "--sysroot", "/", "--allow", "*"), 0, false, nil},
		{"health no build", append(C, "health", "app", cd), exitUsage, false, nil},
		{"version ok", append(C, "version"), 0, false, nil},
		{"version extra", append(C, "version", "extra"), exitUsage, false, nil},
		{"unknown flag", []string{"-C", repo, "build", "app", "--bogus", "--json"}, exitUsage, false, nil},
		{"unknown command", []string{"-C", repo, "frobnicate", "--json"}, exitUsage, false, nil},
		{"unknown command, --json first", append(C, "frobnicate"), exitUsage, false, nil},
		{"doctor none", append(C, "doctor", cd), exitFailure, false, map[string]string{"PATH": noTools, "_EXPERIMENTAL_DAGGER_RUNNER_HOST": "unix:///nonexistent/engine.sock"}},
		{"build unknown target", append(C, "build", "app", "-t", "el9", cd), exitUsage, false, nil},
		{"build unknown stage to skip", append(C, "build", "app", "--skip", "lint", cd), exitUsage, false, nil},
		{"build step fails", append(C, "build", "broken", "--runner", "sandbox", "-j", "2", cd), exitBuild, true, nil},
		{"build ok", append(C, "build", "app", "--runner", "sandbox", "--no-verify", cd), 0, true, nil},
		{"health of the build", append(C, "health", "app", cd), 0, true, nil},
		{"package ok", append(C, "package", "app", cd, "-o", t.TempDir()), 0, true, nil},
		{"package no build", append(C, "package", "broken", cd), exitUsage, false, nil},
		{"verify missing file", append(C, "verify", filepath.Join(repo, "nosuch_1.0-1+deb12_amd64.deb"), cd), exitUsage, false, nil},
		{"verify ok", append(C, "verify", filepath.Join(repo, "pkg", "app-1.0.0-1", "app_1.0.0-1+deb12_amd64.deb"), "--runner", "sandbox", cd), 0, true, nil},
	}
	if sandbox {
		cases = append(cases, tc{"doctor ok", append(C, "doctor", cd), 0, true, nil})
	}
	// The verify of a package that passed before is cached; --reverify
	// runs it again.
	deb := filepath.Join(repo, "pkg", "app-1.0.0-1", "app_1.0.0-1+deb12_amd64.deb")
	cached := map[string]bool{
		"verify ok":       false,
		"verify cached":   true,
		"verify reverify": false,
		"build cached":    true,
	}
	cases = append(cases,
		tc{"verify cached", append(C, "verify", deb, "--runner", "sandbox", cd), 0, true, nil},
		tc{"verify reverify", append(C, "verify", deb, "--runner", "sandbox", "--reverify", cd), 0, true, nil},
		tc{"build cached", append(C, "build", "app", "--runner", "sandbox", cd), 0, true, nil},
	)
	buildSysroot := ""
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.sandbox && !sandbox {
				t.Skip("needs bubblewrap, mmdebstrap and dpkg-deb")
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			got := run(c.args, &stdout, &stderr)
			if got != c.want {
				t.Errorf("exit %d, want %d\nstderr:\n%s", got, c.want, tail(stderr.String(), 30))
			}
			doc := oneDocument(t, stdout.Bytes())
			if doc.FormatVersion == nil || *doc.FormatVersion != jsonFormat {
				t.Errorf("format_version is %v, want %d", doc.FormatVersion, jsonFormat)
			}
			if doc.OK != (got == 0) {
				t.Errorf("ok is %v with exit %d", doc.OK, got)
			}
			switch {
			case got == 0 && (doc.Error != nil || len(doc.Result) == 0):
				t.Errorf("a success has error %v and result %q", doc.Error, doc.Result)
			case got != 0 && (doc.Error == nil || doc.Error.ExitCode != got || doc.Error.Message == ""):
				t.Errorf("a failure's error is %+v, want exit_code %d and a message", doc.Error, got)
			}
			// health of a project judges it in the root it was built in,
			// not in a third one.
			switch c.name {
			case "build ok":
				var b struct {
					Targets []struct{ Health struct{ Sysroot string } }
				}
				json.Unmarshal(doc.Result, &b)
				if len(b.Targets) == 1 {
					buildSysroot = b.Targets[0].Health.Sysroot
				}
			case "build step fails":
				// The failed target lists its components with their
				// states: the sibling stopped because broken failed is
				// cancelled, and not counted among the failures.
				var b struct {
					Targets []struct {
						Components []struct{ Name, State string }
					}
				}
				json.Unmarshal(doc.Result, &b)
				states := map[string]string{}
				for _, t := range b.Targets {
					for _, c := range t.Components {
						states[c.Name] = c.State
					}
				}
				if len(b.Targets) != 1 || len(states) != 2 || states["broken"] != "failed" || states["sibling"] != "cancelled" {
					t.Errorf("the failed target's components: %+v", b.Targets)
				}
				if doc.Error != nil && strings.Contains(doc.Error.Message, "sibling") {
					t.Errorf("the cancelled sibling is in the failure: %s", doc.Error.Message)
				}
				// Where it failed, as data: target, component, step, the
				// step's exit code and its log.
				e := doc.Error
				if e == nil || e.Target != "debian-12" || e.Component != "broken" || e.Step == nil || e.Step.Index != 2 ||
					e.Step.Name != "echo about to fail; exit 3" || e.StepExitCode == nil || *e.StepExitCode != 3 || e.Log == "" {
					t.Errorf("the failure's fields: %+v", e)
				} else if _, err := os.Stat(e.Log); err != nil {
					t.Errorf("its log: %v", err)
				}

			case "health of the build":
				var reps []struct{ Sysroot string }
				json.Unmarshal(doc.Result, &reps)
				if buildSysroot == "" || len(reps) != 1 || reps[0].Sysroot != buildSysroot {
					t.Errorf("health judged the build in %+v, the build was judged in %q", reps, buildSysroot)
				}
			}
			if want, ok := cached[c.name]; ok {
				var reps []struct{ Cached bool }
				if c.name == "build cached" {
					var b struct {
						Targets []struct{ Verify []struct{ Cached bool } }
					}
					json.Unmarshal(doc.Result, &b)
					for _, t := range b.Targets {
						for _, v := range t.Verify {
							reps = append(reps, struct{ Cached bool }{v.Cached})
						}
					}
				} else {
					json.Unmarshal(doc.Result, &reps)
				}
				if len(reps) != 1 || reps[0].Cached != want {
					t.Errorf("verify reports %+v, want one with cached %v", reps, want)
				}
			}
			// Under --json, stderr carries only JSON lines (--log-format
			// auto): events, and the failure as a last line.
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if line == "" {
					continue
				}
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["kind"] == nil {
					t.Errorf("stderr line is not an event: %q", line)
				}
			}
		})
	}
}

func hasTools(tools ...string) bool {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return false
		}
	}
	return true
}

// testRootfsDir is where the tests keep root filesystems, which are slow
// to make: $COACH_ROOTFS_DIR, shared between tests and runs.
// testRootfsDir is pipeline/internal/testroots.Dir, which cmd cannot import.
func testRootfsDir() string {
	if d := os.Getenv("COACH_ROOTFS_DIR"); d != "" {
		return d
	}
	return "/var/tmp/coach-test-rootfs"
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestFailureSaysWhatToTry: a failed build step's text report ends with
// what helps find out why.
func TestFailureSaysWhatToTry(t *testing.T) {
	if !hasTools("bwrap", "mmdebstrap", "dpkg-deb") {
		t.Skip("needs bubblewrap, mmdebstrap and dpkg-deb")
	}
	os.Setenv("COACH_ROOTFS_DIR", testRootfsDir())
	repo := t.TempDir()
	writeTree(t, repo, jsonFixture)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-C", repo, "build", "broken", "--runner", "sandbox", "--progress", "plain", "--cache-dir=" + t.TempDir()}, &stdout, &stderr); code != exitBuild {
		t.Fatalf("exit %d\n%s", code, tail(stderr.String(), 20))
	}
	for _, want := range []string{"coach: to look closer: coach build broken --keep-failed keeps broken's work directory", "coach shell broken broken"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, tail(stderr.String(), 10))
		}
	}
}

// TestCommandTimeout: --timeout stops a build that hangs (exit 1, one
// JSON document that says so), with nothing left running.
func TestCommandTimeout(t *testing.T) {
	if !hasTools("bwrap", "mmdebstrap", "dpkg-deb") {
		t.Skip("needs bubblewrap, mmdebstrap and dpkg-deb")
	}
	os.Setenv("COACH_ROOTFS_DIR", testRootfsDir())
	marker := fmt.Sprintf("coach-cmd-timeout-%d", time.Now().UnixNano())
	repo := t.TempDir()
	writeTree(t, repo, map[string]string{
		"projects/hangs.yaml":   "name: hangs\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [hangs]\n",
		"software/hangs.yaml":   "name: hangs\nlicense: MIT\nversions: [{version: 1.0.0, path: hangs}]\nbuild:\n  - cp /bin/sleep /tmp/" + marker + " && /tmp/" + marker + " 600\n",
		"software/hangs/README": "x\n",
	})
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run([]string{"-C", repo, "--json", "--timeout", "3s", "build", "hangs", "--runner", "sandbox", "--cache-dir=" + t.TempDir()}, &stdout, &stderr)
	took := time.Since(start)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, tail(stderr.String(), 20))
	}
	doc := oneDocument(t, stdout.Bytes())
	if doc.Error == nil || !strings.Contains(doc.Error.Message, "timed out after 3s (--timeout)") {
		t.Errorf("the document's error: %+v", doc.Error)
	}
	if took > 15*time.Second {
		t.Errorf("took %s for a 3 s timeout", took)
	}
	if left := waitGone(marker, 2*time.Second); left != "" {
		t.Fatalf("left running: %s", left)
	}
}
