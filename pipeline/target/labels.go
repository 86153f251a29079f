package target

import (
	"fmt"
	"slices"
	"strings"
)

// ArchList is a run's architectures: given, else the project's, else
// the machine's own; each one coach builds for, none twice.
func ArchList(given, project []string) ([]string, error) {
	list := given
	if len(list) == 0 {
		list = project
	}
	if len(list) == 0 {
		return []string{HostArch()}, nil
	}
	var out []string
	for _, a := range list {
		if !ValidArch(a) {
			return nil, fmt.Errorf("architecture %q: coach builds for %s", a, strings.Join(Arches, " and "))
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Label names a target × arch in events and directories: the
// target alone for the machine's own architecture, target/arch (or
// target-arch in paths) for another.
func Label(name, arch string) string {
	if arch == "" || arch == HostArch() {
		return name
	}
	return name + "-" + arch
}
