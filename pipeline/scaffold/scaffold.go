// Package scaffold reads a source archive and says what a software
// definition of it needs: the directory it unpacks to, its licence files
// (and their SPDX identifier when the text is a known licence), and build
// steps for the build system it ships (autotools with or without a
// generated configure script, CMake, Meson, a plain Makefile, Python, Go).
// coach new software --url writes its definition from this.
package scaffold

import (
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/coach-build/coach/pipeline/archive"
)

// Build systems.
const (
	Autotools  = "autotools"  // a generated ./configure
	Autoreconf = "autoreconf" // configure.ac without ./configure
	CMake      = "cmake"
	Meson      = "meson"
	Make       = "make"
	Python     = "python"
	Go         = "go"
	Unknown    = "unknown"
)

// Source is what a definition of an archive needs.
type Source struct {
	// TopDir is the one directory the archive unpacks to ("" when its
	// files are at its top), and RelativePath the same with the version
	// replaced by {{.Version}}.
	TopDir       string
	RelativePath string
	// LicenseFiles are the licence texts at the top of the source.
	LicenseFiles []string
	// License is the SPDX expression of the licence files' texts, "" when
	// none is recognised; Licenses says which file gave which identifier.
	License  string
	Licenses map[string]string
	// System is the build system found, Steps its build steps and
	// BuildPackages the distro packages it needs beyond the toolchain,
	// per format.
	System        string
	Steps         []string
	BuildPackages map[string][]string
	// Notes say what the steps assume, for a comment in the definition.
	Notes []string
}

// maxLicenseBytes bounds how much of a licence file is read.
const maxLicenseBytes = 256 << 10

// Inspect unpacks the archive at archivePath, named fileName where it
// was downloaded from (with the same confinement and limits as a build's
// sources), into a temporary directory, reads it and removes it. name and
// version are the software's.
func Inspect(archivePath, fileName, name, version string) (*Source, error) {
	tmp, err := os.MkdirTemp("", "coach-scaffold-")
	if err != nil {
		return nil, err
	}
	defer archive.RemoveAll(tmp)
	dst := path.Join(tmp, "src")
	res, err := archive.Extract(archivePath, dst, fileName, archive.DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", fileName, err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return inspect(root.FS(), res.TopDir, name, version), nil
}

// inspect reads an unpacked source: fsys is the archive's top, top the
// one directory under it that holds the source ("" when none).
func inspect(fsys fs.FS, top, name, version string) *Source {
	s := &Source{TopDir: top, Licenses: map[string]string{}, BuildPackages: map[string][]string{}}
	s.RelativePath = top
	if version != "" && strings.Contains(top, version) {
		s.RelativePath = strings.ReplaceAll(top, version, "{{.Version}}")
	}
	dir := top
	if dir == "" {
		dir = "."
	}
	entries, _ := fs.ReadDir(fsys, dir)
	has := map[string]fs.DirEntry{}
	for _, e := range entries {
		has[e.Name()] = e
	}
	file := func(n string) bool { e, ok := has[n]; return ok && e.Type().IsRegular() }
	isDir := func(n string) bool { e, ok := has[n]; return ok && e.IsDir() }

	// Licence files, and what their texts are.
	var ids []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !isLicenseName(e.Name()) {
			continue
		}
		s.LicenseFiles = append(s.LicenseFiles, e.Name())
		if text, err := readBounded(fsys, path.Join(dir, e.Name())); err == nil {
			if id := Identify(text); id != "" {
				s.Licenses[e.Name()] = id
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
	}
	s.License = strings.Join(ids, " AND ")

	switch {
	case file("configure"):
		s.System = Autotools
		s.Steps = []string{"./configure --prefix={{.Embedded}} --disable-static", "make", "make install"}
		if !file("configure.ac") && !file("configure.in") {
			// zlib's, OpenSSL's and others' own scripts take --prefix but
			// may not know --disable-static.
			s.Steps[0] = "./configure --prefix={{.Embedded}}"
			s.Notes = append(s.Notes, "./configure is the project's own script (no configure.ac): check ./configure --help for its options")
		}
	case file("configure.ac") || file("configure.in"):
		s.System = Autoreconf
		s.Steps = []string{"autoreconf -fi", "./configure --prefix={{.Embedded}} --disable-static", "make", "make install"}
		s.BuildPackages = bothFormats("autoconf", "automake", "libtool")
		if file("autogen.sh") {
			s.Notes = append(s.Notes, "the source has an autogen.sh: use it instead of autoreconf -fi if it does more (gnulib, submodules)")
		}
	case file("CMakeLists.txt"):
		s.System = CMake
		// lib, not lib64 or a multiarch directory, whatever the
		// target; the RPATH of installed binaries is the embedded lib.
		s.Steps = []string{
			"cmake -S . -B coach-build -DCMAKE_INSTALL_PREFIX={{.Embedded}} -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_RPATH={{.Embedded}}/lib -DBUILD_SHARED_LIBS=ON",
			"cmake --build coach-build",
			"cmake --install coach-build",
		}
		s.BuildPackages = bothFormats("cmake")
	case file("meson.build"):
		s.System = Meson
		// Ninja does not take make's job server: the job count is given.
		s.Steps = []string{
			"meson setup coach-build --prefix={{.Embedded}} --libdir=lib --buildtype=release -Ddefault_library=shared",
			"meson compile -C coach-build -j {{.Jobs}}",
			"meson install -C coach-build",
		}
		s.BuildPackages = bothFormats("meson", "ninja-build")
	case file("Makefile") || file("makefile") || file("GNUmakefile"):
		s.System = Make
		s.Steps = []string{"make PREFIX={{.Embedded}}", "make install PREFIX={{.Embedded}}"}
		s.Notes = append(s.Notes, "a plain Makefile: check the variable it installs under (PREFIX, prefix, DESTDIR)")
	case file("pyproject.toml") || file("setup.py"):
		s.System = Python
		s.Steps = []string{"{{.Embedded}}/bin/python3 -m pip install --no-deps --no-index --no-build-isolation --prefix={{.Embedded}} ."}
		s.Notes = append(s.Notes, "installs with the embedded Python: add the component that builds it (python) to dependencies")
	case file("go.mod"):
		s.System = Go
		mod := ""
		if isDir("vendor") {
			mod = " -mod=vendor"
		} else {
			s.Notes = append(s.Notes, "no vendor/ directory: steps have no network, so vendor the modules (go mod vendor) into the source first")
		}
		s.Steps = []string{"mkdir -p {{.Embedded}}/bin", "CGO_ENABLED=0 go build -trimpath" + mod + " -o {{.Embedded}}/bin/" + name + " ."}
		s.BuildPackages = map[string][]string{"deb": {"golang-go"}, "rpm": {"golang"}}
	default:
		s.System = Unknown
		s.Steps = []string{`echo "coach new software found no build system in ` + cmp.Or(top, "the archive") + `: write the build steps" >&2; exit 1`}
	}
	return s
}

func bothFormats(pkgs ...string) map[string][]string {
	return map[string][]string{"deb": pkgs, "rpm": slices.Clone(pkgs)}
}

// isLicenseName: LICENSE, LICENCE, COPYING, COPYRIGHT, in any case, with
// or without a suffix (COPYING.LIB, LICENSE.txt, License).
func isLicenseName(n string) bool {
	u := strings.ToUpper(n)
	for _, p := range []string{"LICENSE", "LICENCE", "COPYING", "COPYRIGHT"} {
		if u == p || strings.HasPrefix(u, p+".") || strings.HasPrefix(u, p+"-") || strings.HasPrefix(u, p+"_") {
			return true
		}
	}
	return false
}

func readBounded(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLicenseBytes))
	return string(b), err
}
