// Package health audits the linkage of a built tree: it reads every ELF
// file itself (debug/elf; it never runs ld.so or ldd on what it checks),
// resolves each DT_NEEDED entry the way ld.so would on the target, and
// fails any library that resolves outside the install dir unless the
// target's allowlist (plus the project's) names it, any that does not
// resolve, and any symbol version a library in the tree does not define.
// The allowed system libraries become the package's runtime dependencies.
package health

import (
	"cmp"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/coach-build/coach/pipeline/target"
)

// Options say what to check and against what.
type Options struct {
	// Tree is the host directory holding the install dir's contents, and
	// InstallDir where they are at run time (e.g. /opt/hello).
	Tree       string
	InstallDir string
	// Sysroot is the host directory of the target's root filesystem, used
	// to resolve system libraries and read its ld.so.conf and package
	// database. "/" checks against this host. Empty: system libraries are
	// judged by name only and not resolved.
	Sysroot string
	Target  target.Target
	Arch    string
	// Allow adds soname globs to the target's allowlist (health.allow).
	Allow []string
	// Ignore are globs, relative to the install dir, of files to skip
	// (health.ignore); "**" matches any number of directories.
	Ignore []string
	// Exclude are globs of files the package leaves out
	// (package.exclude): they are not checked and do not exist for the
	// loader, so a shipped file that needs one is an error.
	Exclude []string
	// Owner names the component whose layer holds a file (path relative to
	// the install dir), for reports; nil when unknown.
	Owner func(rel string) string
	// Providers maps sonames to the components whose layers ship them, for
	// "add X as a dependency of Y" hints.
	Providers map[string]string
	// Runpath is the severity of an RPATH or RUNPATH entry that leads
	// outside the install dir: Warning (when empty) or Error.
	Runpath string
	// BuiltFor is the target whose build root made the tree, when it is
	// not Target (coach package --from), for the advice of a refusal.
	BuiltFor string
}

// Severity of a problem: errors fail the check, warnings do not.
const (
	Error   = "error"
	Warning = "warning"
)

// Problem kinds.
const (
	KindNotAllowed     = "not-allowed"
	KindUnresolved     = "unresolved"
	KindMissingVersion = "missing-version"
	KindGlibcTooNew    = "glibc-too-new"
	KindForeign        = "foreign-arch"
	KindMalformed      = "malformed"
	KindRunpath        = "runpath"
)

// Problem is one finding.
type Problem struct {
	Severity  string `json:"severity"`
	Kind      string `json:"kind"`
	File      string `json:"file"` // relative to the install dir
	Component string `json:"component,omitempty"`
	Library   string `json:"library,omitempty"`
	Resolved  string `json:"resolved,omitempty"`
	Version   string `json:"version,omitempty"`
	// Entry is the RPATH or RUNPATH entry a runpath problem is about.
	Entry string `json:"entry,omitempty"`
	Why   string `json:"why"`
	Fix   string `json:"fix"`
}

// SystemLibrary is a library from outside the tree that the tree uses.
type SystemLibrary struct {
	Soname   string   `json:"soname"`
	Path     string   `json:"path,omitempty"`
	Package  string   `json:"package,omitempty"`
	Versions []string `json:"versions,omitempty"`
	UsedBy   int      `json:"used_by"`
}

// Object is one ELF file of the tree.
type Object struct {
	File       string       `json:"file"`
	Component  string       `json:"component,omitempty"`
	Kind       string       `json:"kind"` // executable, library, static, foreign, malformed
	Needed     []Resolution `json:"needed,omitempty"`
	GlibcFloor string       `json:"glibc_floor,omitempty"`
}

// Resolution is where one DT_NEEDED entry of an object resolved.
type Resolution struct {
	Soname   string `json:"soname"`
	Resolved string `json:"resolved,omitempty"`
	How      string `json:"how,omitempty"`
}

// Report is the outcome of a check.
type Report struct {
	Target          string          `json:"target"`
	InstallDir      string          `json:"install_dir"`
	Sysroot         string          `json:"sysroot,omitempty"`
	Files           int             `json:"files"`
	ELF             int             `json:"elf_files"`
	Ignored         int             `json:"ignored"`
	Excluded        int             `json:"excluded,omitempty"`
	Errors          int             `json:"errors"`
	Warnings        int             `json:"warnings"`
	Problems        []Problem       `json:"problems"`
	GlibcFloor      string          `json:"glibc_floor,omitempty"`
	SystemLibraries []SystemLibrary `json:"system_libraries"`
	// Dependencies are the runtime dependencies the system libraries imply
	// for the target's package format.
	Dependencies []string `json:"dependencies"`
	Objects      []Object `json:"objects"`
	Seconds      float64  `json:"seconds"`
}

// OK reports whether the check passed.
func (r *Report) OK() bool { return r.Errors == 0 }

// Check audits a tree.
func Check(opts Options) (*Report, error) {
	start := time.Now()
	installDir := path.Clean("/" + strings.TrimPrefix(opts.InstallDir, "/"))
	v := &view{installDir: installDir, tree: opts.Tree, sysroot: opts.Sysroot}
	if len(opts.Exclude) > 0 {
		v.excluded = func(rel string) bool { return Matches(rel, opts.Exclude) }
	}
	arch := cmp.Or(opts.Arch, runtime.GOARCH)
	l := newLoader(v, opts.Target.SystemLibDirs(arch), libDir(opts.Target, arch))
	rep := &Report{Target: opts.Target.Name, InstallDir: installDir, Sysroot: opts.Sysroot, Problems: []Problem{}, SystemLibraries: []SystemLibrary{}, Dependencies: []string{}}
	owner := func(rel string) string {
		if opts.Owner == nil {
			return ""
		}
		return opts.Owner(rel)
	}

	// Find the ELF files by their magic, in parallel with parsing them.
	type file struct{ rel, host string }
	var files []file
	err := filepath.WalkDir(opts.Tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(opts.Tree, p)
		rel = filepath.ToSlash(rel)
		if Matches(rel, opts.Exclude) {
			rep.Excluded++
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rep.Files++
		if ignored(rel, opts.Ignore) {
			rep.Ignored++
			return nil
		}
		files = append(files, file{rel, p})
		return nil
	})
	if err != nil {
		return nil, err
	}
	type parsed struct {
		file
		elf bool
		obj *object
		err error
	}
	results := make([]parsed, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				f := files[i]
				results[i].file = f
				fh, err := os.Open(f.host)
				if err != nil {
					results[i].err = err
					continue
				}
				isElf := isELF(fh)
				fh.Close()
				if !isElf {
					continue
				}
				results[i].elf = true
				results[i].obj, results[i].err = l.object(f.host)
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()

	allow := append(slices.Clone(opts.Target.Allow), opts.Allow...)
	wantClass, wantMachine := elfClass(arch), target.LookupArch(arch).Machine
	system := map[string]*SystemLibrary{}
	glibcFloor := ""
	type problemKey struct{ kind, file, lib, version, entry string }
	seen := map[problemKey]bool{}
	add := func(p Problem) {
		k := problemKey{p.Kind, p.File, p.Library, p.Version, p.Entry}
		if seen[k] {
			return
		}
		seen[k] = true
		rep.Problems = append(rep.Problems, p)
	}
	// Executables first: a library they load is judged as loaded by them
	// (inheriting their DT_RPATH, as ld.so does). A library no executable
	// in the tree loads (a plugin, a module) is judged on its own.
	isExe := func(r parsed) bool {
		return r.elf && r.err == nil && r.obj.dynamic && (r.obj.interp || r.obj.typ == elf.ET_EXEC)
	}
	exeFirst := func(r parsed) int {
		if isExe(r) {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(results, func(a, b parsed) int { return cmp.Compare(exeFirst(a), exeFirst(b)) })
	loadedByExe := map[string]bool{}
	for _, r := range results {
		if !r.elf {
			continue
		}
		rep.ELF++
		obj := Object{File: r.rel, Component: owner(r.rel)}
		switch {
		case r.err != nil:
			obj.Kind = "malformed"
			add(Problem{Severity: Warning, Kind: KindMalformed, File: r.rel, Component: obj.Component, Why: r.err.Error(),
				Fix: "if the file is data (a test corpus), ignore it with health.ignore; otherwise find out what truncated or corrupted it"})
		case r.obj.class != wantClass || r.obj.machine != wantMachine:
			obj.Kind = "foreign"
			// An error: a package of the target's architecture whose
			// programs are another's does not run (a build on an image
			// or root of the wrong platform produces exactly that).
			add(Problem{Severity: Error, Kind: KindForeign, File: r.rel, Component: obj.Component,
				Why: fmt.Sprintf("built for %s %s, not for %s (%s %s); it cannot be loaded on the target", r.obj.class, r.obj.machine, arch, wantClass, wantMachine),
				Fix: "rebuild it for the target (with the dagger runner, the image must have a " + arch + " variant); if it is meant for another machine (firmware, a cross toolchain's target files), ignore it with health.ignore"})
		case !r.obj.dynamic:
			obj.Kind = "static"
		default:
			obj.Kind = "library"
			if r.obj.interp || r.obj.typ == elf.ET_EXEC {
				obj.Kind = "executable"
			}
			runtimePath := path.Join(installDir, r.rel)
			real, _, err := v.realpath(runtimePath)
			if err != nil {
				real = runtimePath
			}
			self := &node{path: runtimePath, real: real, obj: r.obj}
			for _, b := range l.searchPathProblems(self, installDir) {
				add(Problem{Severity: cmp.Or(opts.Runpath, Warning), Kind: KindRunpath, File: r.rel, Component: obj.Component, Entry: b.entry,
					Why: b.why, Fix: b.fix})
			}
			// Judged already as loaded by an executable, with its RPATH.
			judged := !isExe(r) && loadedByExe[real]
			edges, loaded := l.closure(runtimePath, real, r.obj)
			if isExe(r) {
				for _, n := range loaded {
					if within(n.real, installDir) {
						loadedByExe[n.real] = true
					}
				}
			}
			for _, e := range edges {
				if e.from.parent == nil {
					obj.Needed = append(obj.Needed, Resolution{Soname: e.soname, Resolved: e.to.path, How: e.to.how})
				}
				if judged {
					continue
				}
				fromRel := r.rel
				if e.from.parent != nil {
					if !within(e.from.real, installDir) {
						continue // a system library's own needs are the system's business
					}
					fromRel = strings.TrimPrefix(strings.TrimPrefix(e.from.path, installDir), "/")
				}
				judge(e, fromRel, installDir, v.sysroot != "", allow, owner, opts.Providers, opts.Target.Name, system, add)
			}
			// Symbol versions, for every object this one loaded from the tree.
			if judged {
				loaded = nil
			}
			for _, n := range append([]*node{{path: runtimePath, obj: r.obj}}, values(loaded)...) {
				if n.path != runtimePath && !within(n.real, installDir) {
					continue
				}
				nRel := strings.TrimPrefix(strings.TrimPrefix(n.path, installDir), "/")
				for lib, versions := range n.obj.needs {
					m := loaded[lib]
					for _, ver := range versions {
						if strings.HasPrefix(ver, "GLIBC_") && n.path == runtimePath {
							if versionLess(obj.GlibcFloor, ver) {
								obj.GlibcFloor = ver
							}
						}
						if m == nil || !within(m.real, installDir) {
							if sl := system[lib]; sl != nil && !slices.Contains(sl.Versions, ver) {
								sl.Versions = append(sl.Versions, ver)
							}
						}
						if m == nil {
							continue // unresolved: reported above
						}
						if !m.obj.defs[ver] && (within(m.real, installDir) || v.sysroot != "") {
							add(Problem{Severity: Error, Kind: KindMissingVersion, File: nRel, Component: owner(nRel), Library: lib, Resolved: m.path, Version: ver,
								Why: fmt.Sprintf("needs symbol version %s of %s, which %s does not define", ver, lib, m.path),
								Fix: fixMissingVersion(lib, m.path, installDir, owner)})
						}
					}
				}
			}
			if versionLess(glibcFloor, obj.GlibcFloor) {
				glibcFloor = obj.GlibcFloor
			}
			if t := opts.Target.Glibc; t != "" && obj.GlibcFloor != "" && versionLess("GLIBC_"+t, obj.GlibcFloor) {
				add(Problem{Severity: Error, Kind: KindGlibcTooNew, File: r.rel, Component: obj.Component, Library: "libc.so.6", Version: obj.GlibcFloor,
					Why: fmt.Sprintf("needs %s, but %s has glibc %s", obj.GlibcFloor, opts.Target.Name, t),
					Fix: glibcFix(opts.BuiltFor, opts.Target.Name)})
			}
		}
		rep.Objects = append(rep.Objects, obj)
	}
	for _, p := range rep.Problems {
		if p.Severity == Error {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	rank := func(p Problem) int {
		if p.Severity == Error {
			return 0
		}
		return 1
	}
	slices.SortFunc(rep.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.File, b.File), cmp.Compare(a.Library, b.Library), cmp.Compare(a.Version, b.Version))
	})
	rep.GlibcFloor = glibcFloor
	for _, s := range system {
		slices.SortFunc(s.Versions, func(a, b string) int {
			if versionLess(a, b) {
				return -1
			}
			if versionLess(b, a) {
				return 1
			}
			return strings.Compare(a, b)
		})
		rep.SystemLibraries = append(rep.SystemLibraries, *s)
	}
	slices.SortFunc(rep.SystemLibraries, func(a, b SystemLibrary) int { return strings.Compare(a.Soname, b.Soname) })
	rep.Dependencies = dependencies(opts.Target, arch, v, rep.SystemLibraries, glibcFloor)
	slices.SortFunc(rep.Objects, func(a, b Object) int { return strings.Compare(a.File, b.File) })
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func values(m map[string]*node) []*node {
	out := make([]*node, 0, len(m))
	seen := map[*node]bool{}
	for _, n := range m {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// judge decides whether one DT_NEEDED edge is acceptable.
func judge(e edge, fromRel, installDir string, haveSysroot bool, allow []string, owner func(string) string, providers map[string]string, targetName string, system map[string]*SystemLibrary, add func(Problem)) {
	comp := owner(fromRel)
	allowed := matchAny(e.soname, allow)
	switch {
	case e.to.obj != nil && within(e.to.real, installDir):
		return
	case e.to.obj == nil && !haveSysroot && allowed:
		// No target root to look in: an allowed name is taken on trust.
		recordSystem(system, e.soname, "")
		return
	case e.to.obj == nil:
		why := fmt.Sprintf("needs %s, which is not in the tree, its RPATH/RUNPATH or %s's system library directories", e.soname, targetName)
		if e.to.incompatible != "" {
			why += "; " + e.to.incompatible + " is for another architecture"
		}
		if e.to.excluded != "" {
			why = fmt.Sprintf("needs %s, and %s, which provides it, is left out of the package by package.exclude", e.soname, e.to.excluded)
		}
		if !haveSysroot {
			why = fmt.Sprintf("needs %s, which is not in the tree and not in %s's allowlist", e.soname, targetName)
		}
		add(Problem{Severity: Error, Kind: KindUnresolved, File: fromRel, Component: comp, Library: e.soname, Why: why, Fix: fixOutside(e.soname, comp, providers)})
	case allowed:
		// By the name ld.so found it under, as the distribution's package
		// database lists it; a link from the tree by where it leads.
		p := e.to.path
		if within(p, installDir) {
			p = e.to.real
		}
		recordSystem(system, e.soname, p)
	default:
		where := e.to.path
		if within(where, installDir) {
			where += " -> " + e.to.real // a link from the tree into the system
		}
		add(Problem{Severity: Error, Kind: KindNotAllowed, File: fromRel, Component: comp, Library: e.soname, Resolved: e.to.path,
			Why: fmt.Sprintf("needs %s, which resolved to %s outside %s and is not in %s's allowlist", e.soname, where, installDir, targetName),
			Fix: fixOutside(e.soname, comp, providers)})
	}
}

func recordSystem(system map[string]*SystemLibrary, soname, p string) {
	s := system[soname]
	if s == nil {
		s = &SystemLibrary{Soname: soname, Path: p}
		system[soname] = s
	}
	s.UsedBy++
}

func fixOutside(soname, comp string, providers map[string]string) string {
	who := "the component"
	if comp != "" {
		who = comp
	}
	if p := providers[soname]; p != "" && p != comp {
		return fmt.Sprintf("add %s as a dependency of %s, so that its build finds the embedded %s (and links it through the RPATH)", p, who, soname)
	}
	return fmt.Sprintf("build %s as a component of the project and add it as a dependency of %s, or, if the target really provides it, allow it in health.allow", soname, who)
}

// glibcFix is the advice for a binary that needs a newer glibc than the
// target has.
func glibcFix(builtFor, target string) string {
	if builtFor != "" && builtFor != target {
		return fmt.Sprintf("this tree was built for %s, whose glibc is newer: build the project for %s itself (coach build -t %s), or package %s from the tree of a target whose glibc is not newer than its own (--from)", builtFor, target, target, target)
	}
	return "build it in the target's own build root (the runner does), not on a newer host"
}

func fixMissingVersion(lib, resolved, installDir string, owner func(string) string) string {
	if within(resolved, installDir) {
		rel := strings.TrimPrefix(strings.TrimPrefix(resolved, installDir), "/")
		if c := owner(rel); c != "" {
			return fmt.Sprintf("rebuild against the %s that %s ships, or build %s with the symbol versioning (version script) its users were linked against", lib, c, c)
		}
		return "rebuild the user against the library the tree ships, or ship the library it was linked against"
	}
	return "the target's library is older than the one this was linked against: build in the target's own build root"
}

// ignored reports whether rel matches one of the globs.
func ignored(rel string, globs []string) bool { return Matches(rel, globs) }

// Matches reports whether a slash-separated path relative to the install
// dir matches one of the globs, in the one glob grammar coach uses for
// paths (doublestar's: "**" is any number of directories, "{a,b}" either):
// health.ignore and package.exclude. A directory's match covers
// everything beneath it.
func Matches(rel string, globs []string) bool {
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, rel); ok {
			return true
		}
		for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
			if ok, _ := doublestar.Match(g, d); ok {
				return true
			}
		}
	}
	return false
}

// ValidGlob reports whether a path glob is well formed.
func ValidGlob(g string) bool { return doublestar.ValidatePattern(g) }

func matchAny(soname string, globs []string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, soname); ok {
			return true
		}
	}
	return false
}

// versionLess compares GLIBC_2.34-style versions numerically; "" is least.
func versionLess(a, b string) bool {
	if a == "" {
		return b != ""
	}
	if b == "" {
		return false
	}
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < max(len(pa), len(pb)); i++ {
		x, y := 0, 0
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func versionParts(v string) []int {
	_, num, ok := strings.Cut(v, "_")
	if !ok {
		num = v
	}
	var out []int
	for _, s := range strings.Split(num, ".") {
		n, err := strconv.Atoi(s)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

func elfClass(goarch string) elf.Class { return target.LookupArch(goarch).Class }

// libDir is what $LIB expands to on a target.
func libDir(t target.Target, goarch string) string {
	if t.Format == target.FormatRPM && elfClass(goarch) == elf.ELFCLASS64 {
		return "lib64"
	}
	if t.Format == target.FormatDeb {
		return "lib/" + target.Multiarch(goarch)
	}
	return "lib"
}
