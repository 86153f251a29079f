package health

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coach-build/coach/pipeline/target"
)

// debPackages are the packages that ship the allowlisted sonames on every
// Debian-family release, for when the target's package database cannot be
// read.
var debPackages = map[string]string{
	"libc.so.6": "libc6", "libm.so.6": "libc6", "libpthread.so.0": "libc6", "libdl.so.2": "libc6",
	"librt.so.1": "libc6", "libresolv.so.2": "libc6", "libutil.so.1": "libc6", "libanl.so.1": "libc6",
	"ld-linux-x86-64.so.2": "libc6", "ld-linux-aarch64.so.1": "libc6", "ld-linux.so.2": "libc6",
	"libgcc_s.so.1": "libgcc-s1", "libstdc++.so.6": "libstdc++6", "libcrypt.so.1": "libcrypt1",
}

// dependencies turns the system libraries a tree uses into runtime
// dependencies in the target format's own terms:
//
//	deb: the owning package, libc6 with the glibc floor: libc6 (>= 2.34)
//	rpm: what rpm's own dependency generator writes: libc.so.6()(64bit)
//	     and libc.so.6(GLIBC_2.34)(64bit) for each version used
func dependencies(t target.Target, arch string, v *view, libs []SystemLibrary, glibcFloor string) []string {
	set := map[string]bool{}
	if t.Format == target.FormatRPM {
		suffix := ""
		if elfClass(arch) == elf.ELFCLASS64 {
			suffix = "(64bit)"
		}
		for _, l := range libs {
			if strings.HasPrefix(l.Soname, "linux-vdso") || strings.HasPrefix(l.Soname, "linux-gate") {
				continue
			}
			set[l.Soname+"()"+suffix] = true
			for _, ver := range l.Versions {
				set[l.Soname+"("+ver+")"+suffix] = true
			}
		}
	} else {
		owners := dpkgOwners(v)
		for i := range libs {
			l := &libs[i]
			if strings.HasPrefix(l.Soname, "linux-vdso") || strings.HasPrefix(l.Soname, "linux-gate") {
				continue
			}
			pkg := ""
			if l.Path != "" {
				pkg = owners[l.Path]
				if pkg == "" {
					if real, _, err := v.realpath(l.Path); err == nil {
						pkg = owners[real]
					}
				}
			}
			if pkg == "" {
				pkg = debPackages[l.Soname]
			}
			if pkg == "" {
				continue
			}
			l.Package = pkg
			if pkg == "libc6" && glibcFloor != "" {
				set[fmt.Sprintf("libc6 (>= %s)", strings.TrimPrefix(glibcFloor, "GLIBC_"))] = true
			} else {
				set[pkg] = true
			}
		}
		// "libc6" alone is implied by "libc6 (>= x)".
		for d := range set {
			if strings.HasPrefix(d, "libc6 (") {
				delete(set, "libc6")
			}
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// dpkgOwners maps the files of the target's installed packages to their
// package names, from /var/lib/dpkg/info/*.list in the sysroot.
func dpkgOwners(v *view) map[string]string {
	owners := map[string]string{}
	if v.sysroot == "" {
		return owners
	}
	lists, _ := filepath.Glob(filepath.Join(v.sysroot, "var/lib/dpkg/info/*.list"))
	for _, list := range lists {
		pkg := strings.TrimSuffix(filepath.Base(list), ".list")
		pkg, _, _ = strings.Cut(pkg, ":")
		data, err := os.ReadFile(list)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, ".so") {
				owners[path.Clean(line)] = pkg
			}
		}
	}
	return owners
}
