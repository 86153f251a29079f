package binfmt

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func foreign() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// TestCanRun reads fake binfmt_misc directories: absent, without the
// interpreter, disabled, without F, and ready.
func TestCanRun(t *testing.T) {
	arch := foreign()
	name := "qemu-" + Machine(arch)
	mk := func(entry string) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "register"), nil, 0o200)
		os.WriteFile(filepath.Join(dir, "status"), []byte("enabled\n"), 0o644)
		if entry != "" {
			os.WriteFile(filepath.Join(dir, name), []byte(entry), 0o644)
		}
		return dir
	}
	for _, c := range []struct {
		name, dir, want string
	}{
		{"not mounted", t.TempDir(), "binfmt_misc is not mounted; fix: mount -t binfmt_misc"},
		{"no interpreter", mk(""), "no " + name + " interpreter is registered"},
		{"disabled", mk("disabled\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: PF\n"), "registered but disabled; fix: update-binfmts --enable " + name},
		{"no F flag", mk("enabled\ninterpreter /usr/bin/qemu-x\nflags: P\n"), "without the F flag"},
		{"ready", mk("enabled\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: PF\n"), ""},
	} {
		err := CanRun(c.dir, arch)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if err := CanRun(t.TempDir(), runtime.GOARCH); err != nil {
		t.Errorf("the host's own arch: %v", err)
	}
}

// TestProbe reads each probe program with debug/elf and runs it: natively
// for this machine's arch, and under qemu-user where an interpreter for
// the other is registered.
func TestProbe(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			prog, err := Probe(arch)
			if err != nil {
				t.Fatal(err)
			}
			f, err := elf.NewFile(bytes.NewReader(prog))
			if err != nil {
				t.Fatalf("not an ELF file: %v", err)
			}
			want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
			if f.Machine != want || f.Type != elf.ET_EXEC || len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_LOAD {
				t.Fatalf("machine %v type %v progs %d", f.Machine, f.Type, len(f.Progs))
			}
			if arch != runtime.GOARCH && CanRun(Dir, arch) != nil {
				t.Skipf("this machine cannot run %s programs (no binfmt_misc interpreter); .ci/run registers qemu-user's", arch)
			}
			p := filepath.Join(t.TempDir(), "probe")
			if err := os.WriteFile(p, prog, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(p).CombinedOutput(); err != nil {
				t.Fatalf("the %s probe did not exit 0: %v %s", arch, err, out)
			}
		})
	}
	if _, err := Probe("mips"); err == nil {
		t.Error("a probe for an arch coach does not know")
	}
}
