package binfmt

import (
	"os"
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
