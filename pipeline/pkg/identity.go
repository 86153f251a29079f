package pkg

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/coach-build/coach/pipeline/target"
)

// Identify reads a package's name and target from its file name:
// name_version-iteration+tag_arch.deb or name-version-iteration.tag.arch.rpm.
func Identify(file string) (name string, t target.Target, err error) {
	base := filepath.Base(file)
	var tag, format string
	switch {
	case strings.HasSuffix(base, ".deb"):
		parts := strings.Split(strings.TrimSuffix(base, ".deb"), "_")
		if len(parts) != 3 || !strings.Contains(parts[1], "+") {
			return "", t, fmt.Errorf("%s is not named name_version-iteration+tag_arch.deb", base)
		}
		name, tag, format = parts[0], parts[1][strings.LastIndex(parts[1], "+")+1:], target.FormatDeb
	case strings.HasSuffix(base, ".rpm"):
		parts := strings.Split(strings.TrimSuffix(base, ".rpm"), ".")
		if len(parts) < 3 {
			return "", t, fmt.Errorf("%s is not named name-version-iteration.tag.arch.rpm", base)
		}
		tag, format = parts[len(parts)-2], target.FormatRPM
		nv := strings.Join(parts[:len(parts)-2], ".")
		fields := strings.Split(nv, "-")
		if len(fields) < 3 {
			return "", t, fmt.Errorf("%s is not named name-version-iteration.tag.arch.rpm", base)
		}
		name = strings.Join(fields[:len(fields)-2], "-")
	default:
		return "", t, fmt.Errorf("%s is neither a .deb nor an .rpm", base)
	}
	for _, n := range target.BuiltinNames() {
		c, _ := target.Builtin(n)
		if c.DistTag == tag && c.Format == format {
			return name, c, nil
		}
	}
	return "", t, fmt.Errorf("%s: no target has the dist tag %q; give --target", base, tag)
}

// ArchOf is the Go architecture a package file is named for
// (name_version_arm64.deb, name-version.el9.aarch64.rpm); "" when the
// name says none coach knows.
func ArchOf(file string) string {
	base := filepath.Base(file)
	var a string
	switch {
	case strings.HasSuffix(base, ".deb"):
		parts := strings.Split(strings.TrimSuffix(base, ".deb"), "_")
		a = parts[len(parts)-1]
	case strings.HasSuffix(base, ".rpm"):
		parts := strings.Split(strings.TrimSuffix(base, ".rpm"), ".")
		a = parts[len(parts)-1]
	}
	if arch, ok := target.ArchOf(a); ok {
		return arch.Go
	}
	return ""
}
