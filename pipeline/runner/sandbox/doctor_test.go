package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorHostProblems: the two problems of Ubuntu CI runners, with a
// fake /proc and keyring directory.
func TestDoctorHostProblems(t *testing.T) {
	keys := t.TempDir()
	os.WriteFile(filepath.Join(keys, "debian-archive-keyring.gpg"), []byte("k"), 0o644)
	if _, _, err := KeyringCheck(keys, "debian"); err != nil {
		t.Errorf("debian keyring present: %v", err)
	}
	if _, pkg, err := KeyringCheck(keys, "ubuntu"); err == nil || pkg != "ubuntu-keyring" {
		t.Errorf("ubuntu keyring missing: %v %q", err, pkg)
	}
	if _, pkg, err := KeyringCheck(t.TempDir(), "debian"); err == nil || pkg != "debian-archive-keyring" || !strings.Contains(err.Error(), "cannot verify the debian archive") {
		t.Errorf("debian keyring missing: %v %q", err, pkg)
	}
	proc := t.TempDir()
	if UsernsRestricted(proc) {
		t.Error("no AppArmor knob read as restricted")
	}
	os.MkdirAll(filepath.Join(proc, "sys/kernel"), 0o755)
	os.WriteFile(filepath.Join(proc, "sys/kernel/apparmor_restrict_unprivileged_userns"), []byte("1\n"), 0o644)
	if !UsernsRestricted(proc) {
		t.Error("apparmor_restrict_unprivileged_userns=1 not seen")
	}
	os.WriteFile(filepath.Join(proc, "sys/kernel/apparmor_restrict_unprivileged_userns"), []byte("0\n"), 0o644)
	if UsernsRestricted(proc) {
		t.Error("apparmor_restrict_unprivileged_userns=0 read as restricted")
	}
}
