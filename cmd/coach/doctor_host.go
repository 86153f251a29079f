package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// keyringDir is where Debian-family hosts keep archive keyrings;
// $COACH_KEYRING_DIR replaces it in tests.
func keyringDir() string {
	if d := os.Getenv("COACH_KEYRING_DIR"); d != "" {
		return d
	}
	return "/usr/share/keyrings"
}

// archiveKeyring is the keyring mmdebstrap needs to trust a family's
// archive, and the package that ships it (on Debian and Ubuntu alike).
func archiveKeyring(family string) (file, pkg string, ok bool) {
	switch family {
	case "debian":
		return "debian-archive-keyring.gpg", "debian-archive-keyring", true
	case "ubuntu":
		return "ubuntu-archive-keyring.gpg", "ubuntu-keyring", true
	}
	return "", "", false
}

// keyringCheck says whether the archive keyring of a target's family is
// here: without it mmdebstrap cannot verify the mirror (an Ubuntu runner
// lacks Debian's, a Debian host Ubuntu's).
func keyringCheck(dir, family string) (detail, pkg string, err error) {
	file, pkg, ok := archiveKeyring(family)
	if !ok {
		return "no keyring needed", "", nil
	}
	p := filepath.Join(dir, file)
	if _, err := os.Stat(p); err != nil {
		return "", pkg, fmt.Errorf("%s is missing: mmdebstrap cannot verify the %s archive", p, family)
	}
	return p + " verifies the archive", pkg, nil
}

// procDir is /proc, or $COACH_PROC_DIR in tests.
func procDir() string {
	if d := os.Getenv("COACH_PROC_DIR"); d != "" {
		return d
	}
	return "/proc"
}

// usernsRestricted reports whether AppArmor keeps unprivileged users from
// making user namespaces (Ubuntu 23.10 and later, 24.04 runners): then
// bubblewrap fails as a user, unless run as root or given a profile.
func usernsRestricted(proc string) bool {
	b, err := os.ReadFile(filepath.Join(proc, "sys/kernel/apparmor_restrict_unprivileged_userns"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
