package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/binfmt"
	"github.com/coach-build/coach/pipeline/doctor"
)

// TestDoctorEmulation reads fake binfmt_misc directories: absent, then
// with the other architecture's qemu interpreter registered with F.
func TestDoctorEmulation(t *testing.T) {
	foreign := "arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "amd64"
	}
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix:///nonexistent/engine.sock")
	doctor := func(dir string) map[string]doctor.Result {
		t.Helper()
		t.Setenv("COACH_BINFMT_MISC", dir)
		var out, errb bytes.Buffer
		run([]string{"--json", "doctor", "--cache-dir", t.TempDir()}, &out, &errb)
		var env struct {
			Result doctorJSON `json:"result"`
		}
		if err := json.Unmarshal(out.Bytes(), &env); err != nil {
			t.Fatalf("%v\n%s\n%s", err, out.String(), errb.String())
		}
		checks := map[string]doctor.Result{}
		for _, c := range env.Result.Checks {
			checks[c.Name] = c
		}
		return checks
	}
	absent := doctor(filepath.Join(t.TempDir(), "nothing-mounted"))
	if c := absent["emulation: binfmt_misc"]; c.OK || !strings.Contains(c.Fix, "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc") {
		t.Errorf("binfmt_misc absent: %+v", c)
	}
	if c := absent["emulation: "+foreign]; c.OK || !strings.Contains(c.Fix, "apt-get install qemu-user-static") || c.Package != "qemu-user-static" {
		t.Errorf("%s without binfmt_misc: %+v", foreign, c)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "register"), nil, 0o200)
	os.WriteFile(filepath.Join(dir, "qemu-"+binfmt.Machine(foreign)), []byte("enabled\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: PF\n"), 0o644)
	ready := doctor(dir)
	if c := ready["emulation: "+foreign]; !c.OK {
		t.Errorf("%s with an F interpreter: %+v", foreign, c)
	}
	if c := ready["emulation: binfmt_misc"]; !c.OK || !strings.Contains(c.Detail, "qemu-"+binfmt.Machine(foreign)+" (flags PF)") {
		t.Errorf("binfmt_misc listing: %+v", c)
	}
}
