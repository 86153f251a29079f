// Package testroots is where the test suite keeps the root filesystems it
// builds and verifies in: made once per machine (they take minutes, more
// under emulation) and shared by every package's tests and every run.
// .ci/run makes the common ones before go test (make/), so that no test
// pays for them inside its package's timeout.
package testroots

import (
	"os"
	"testing"
)

// Default is the machine's shared directory of test root filesystems.
const Default = "/var/tmp/coach-test-rootfs"

// Dir is $COACH_ROOTFS_DIR, else Default.
func Dir() string {
	if d := os.Getenv("COACH_ROOTFS_DIR"); d != "" {
		return d
	}
	return Default
}

// DebianSources is $COACH_DEBIAN_SOURCES, the directory of Debian's orig
// tarballs that .ci/fetch-debian-sources fills (as .ci/run does); a test
// or benchmark without it skips, saying so.
func DebianSources(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("COACH_DEBIAN_SOURCES")
	if dir == "" {
		tb.Skip("COACH_DEBIAN_SOURCES is not set: fill a directory with .ci/fetch-debian-sources (as .ci/run does) and point it there")
	}
	return dir
}
