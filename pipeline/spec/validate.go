package spec

import (
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/github/go-spdx/v2/spdxexp"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/bmatcuk/doublestar/v4"

	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/version"
)

// Hooks are the lifecycle scripts a project may ship. pretrans and
// posttrans exist only in rpm.
var Hooks = []string{"preinst", "postinst", "prerm", "postrm", "pretrans", "posttrans"}

var (
	softwareName = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]*$`)
	// Debian policy: lower case letters, digits, + - . and at least two
	// characters, starting with an alphanumeric. rpm accepts all of these.
	packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// distroPackage is a package a build environment installs: a Debian
	// or rpm name, with a Debian architecture qualifier allowed.
	distroPackage = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*(:[a-z0-9-]+)?$`)
	envName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hexCommit     = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
)

var (
	// safeVersion is what a version may be made of: it goes into paths,
	// file names and package versions.
	safeVersion = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~_-]{0,127}$`)
	// safeInstallDir is an absolute path of plain names, at least two deep.
	safeInstallDir = regexp.MustCompile(`^(/[A-Za-z0-9_+][A-Za-z0-9._+-]*){2,}$`)
	// safeRef is a plain tag name; never an option.
	safeRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/+-]*$`)
	// scpLike is git's user@host:path form.
	scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^-]`)
)

// gitURL reports whether s is a repository URL that git can only take as a
// repository: never an option (a leading -), always a known transport.
func gitURL(s string) bool {
	if s == "" || strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\n\x00") {
		return false
	}
	if scpLike.MatchString(s) {
		return true
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "https", "http", "ssh", "git":
		return u.Host != "" && !strings.HasPrefix(u.Host, "-")
	case "file":
		return u.Path != ""
	}
	return false
}

// systemDirs may not hold an install_dir: they belong to the distribution.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var"}

type validator struct {
	repo *Repo
	ps   *problems
	// templates memoises template checks: the same step strings recur in
	// many definitions.
	templates map[string]error
}

// checkTemplate renders text with sample values once per distinct text.
func (v *validator) checkTemplate(text string) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	if v.templates == nil {
		v.templates = map[string]error{}
	}
	if err, ok := v.templates[text]; ok {
		return "", err
	}
	out, err := Expand(text, sampleVars)
	v.templates[text] = err
	return out, err
}

func (v *validator) add(pos Pos, hint, format string, args ...any) {
	v.ps.add(pos, hint, format, args...)
}

func (v *validator) software(name string, s *Software) {
	if s.broken("") {
		return
	}
	at := s.At
	if s.Name == "" {
		v.add(at("name"), fmt.Sprintf("add name: %s", name), "name is required")
	} else if s.Name != name {
		v.add(at("name"), fmt.Sprintf("rename the file to software/%s.yaml or set name: %s", s.Name, name), "name %q does not match the file name %q", s.Name, name)
	}
	if !softwareName.MatchString(name) {
		v.add(Pos{File: s.Path}, "use lower case letters, digits and + . _ -", "software name %q is not allowed", name)
	}
	if s.License == "" {
		v.add(at("license"), "give an SPDX identifier such as MIT, or LicenseRef-<name> for a custom license", "license is required")
	} else {
		v.license(at("license"), s.License)
	}
	if len(s.Versions) == 0 && !s.broken("versions") {
		v.add(at("versions"), "list at least one version with its source and checksum", "software %s has no versions", name)
	}
	for _, f := range []struct {
		format string
		pkgs   []string
	}{{"deb", s.BuildPackages.Deb}, {"rpm", s.BuildPackages.RPM}} {
		for i, p := range f.pkgs {
			if !distroPackage.MatchString(p) {
				v.add(at(fmt.Sprintf("build_packages.%s[%d]", f.format, i)), "give a package name of the distribution (autoconf, libssl-dev, gcc-c++), one per entry", "%q is not a package name", p)
			}
		}
	}
	seen := map[string]int{}
	var semvers []*semver.Version
	for i := range s.Versions {
		p := fmt.Sprintf("versions[%d]", i)
		v.renderURL(s, p, &s.Versions[i])
		ver := s.Versions[i]
		v.version(s, p, ver)
		if ver.Version == "" {
			continue
		}
		key := ver.Version
		if sv, err := semver.NewVersion(ver.Version); err == nil && !ver.Exact {
			key = sv.String()
			semvers = append(semvers, sv)
		}
		if j, dup := seen[key]; dup {
			v.add(at(p+".version"), fmt.Sprintf("remove one of the two; the first is at line %d", at(fmt.Sprintf("versions[%d]", j)).Line), "version %s appears twice", ver.Version)
		}
		seen[key] = i
	}
	allExact := len(s.Versions) > 0 && !slices.ContainsFunc(s.Versions, func(v Version) bool { return !v.Exact })
	if s.DefaultVersion == "" && allExact && !s.broken("versions") {
		v.add(at("versions"), fmt.Sprintf("add default_version: %q (or a semver version)", s.Versions[0].Version), "every version of %s is an exact pin, so none is chosen by default", name)
	}
	if s.DefaultVersion != "" {
		if c, err := semver.NewConstraint(s.DefaultVersion); err != nil {
			if _, exact := seen[s.DefaultVersion]; !exact {
				v.add(at("default_version"), "use a semver constraint such as ~1.3 or >=1.2, <2", "default_version %q is not a valid constraint: %v", s.DefaultVersion, err)
			}
		} else if len(semvers) > 0 && !slices.ContainsFunc(semvers, c.Check) {
			v.add(at("default_version"), "widen the constraint or add a matching version", "default_version %q matches none of the versions (%s)", s.DefaultVersion, versionList(s))
		}
	}
	if s.RelativePath != "" {
		// Rendered with each version's real values (and the sample ones
		// for the rest): a template must stay inside the source tree for
		// every version it can be built at.
		vars := []StepVars{sampleVars}
		for _, ver := range s.Versions {
			sv := sampleVars
			sv.Name, sv.Version = name, ver.Version
			vars = append(vars, sv)
		}
		for _, sv := range vars {
			rel, err := Expand(s.RelativePath, sv)
			if err != nil { // rendered: the result is checked
				v.add(at("relative_path"), templateHint, "relative_path: %s", templateError(err))
				break
			}
			if !filepath.IsLocal(rel) || strings.ContainsAny(rel, "\n\x00") {
				v.add(at("relative_path"), "give a directory inside the unpacked source, e.g. zlib-{{.Version}}", "relative_path %q renders as %q for version %s, which leaves the source tree", s.RelativePath, rel, sv.Version)
				break
			}
		}
	}
	for i, f := range s.LicenseFiles {
		if !filepath.IsLocal(filepath.FromSlash(f)) {
			v.add(at(fmt.Sprintf("license_files[%d]", i)), "give a file relative to the source directory, e.g. LICENSE", "license file %q must stay inside the source tree", f)
		}
	}
	seenDep := map[string]bool{}
	for i, dep := range s.Dependencies {
		p := fmt.Sprintf("dependencies[%d]", i)
		switch {
		case dep == name:
			v.add(at(p), "remove it", "%s depends on itself", name)
		case seenDep[dep]:
			v.add(at(p), "remove the repeated entry", "dependency %q is listed twice", dep)
		case v.repo.Software[dep] == nil:
			v.add(at(p), v.knownSoftwareHint(dep), "dependency %q has no definition (software/%s.yaml)", dep, dep)
		}
		seenDep[dep] = true
	}
	v.patches(s, "patches", s.Patches)
	v.env(s.Path, s.pos, "env", s.Env)
	if len(s.Build) == 0 && !s.broken("build") {
		v.add(at("build"), "add the commands that build and install it, e.g. - make install", "build has no steps")
	}
	for i, st := range s.Build {
		p := fmt.Sprintf("build[%d]", i)
		if s.broken(p) {
			continue
		}
		switch {
		case st.Run == "" && len(st.Argv) == 0:
			v.add(at(p), "give run: <command line> or argv: [program, args...]", "build step has no command")
		case st.Run != "" && len(st.Argv) > 0:
			v.add(at(p), "keep run or argv, not both", "build step has both run and argv")
		}
		for _, text := range append([]string{st.Name, st.Run, st.Dir}, st.Argv...) {
			if _, err := v.checkTemplate(text); err != nil {
				v.add(at(p), templateHint, "build step: %s", templateError(err))
				break
			}
		}
		if st.Dir != "" && !filepath.IsLocal(st.Dir) {
			v.add(at(p+".dir"), "give a directory relative to the source directory", "dir %q must stay inside the source tree", st.Dir)
		}
		v.env(s.Path, s.pos, p+".env", st.Env)
		v.timeout(at(p+".timeout"), st.Timeout)
	}
	v.timeout(at("timeout"), s.Timeout)
}

// license checks a license: an SPDX expression over identifiers of the
// SPDX license list (github/go-spdx's copy of it) or LicenseRef-<name>.
func (v *validator) license(pos Pos, expr string) {
	if ok, bad := spdxexp.ValidateLicenses([]string{expr}); !ok {
		v.add(pos, "use identifiers of the SPDX license list (https://spdx.org/licenses/), joined by AND, OR and WITH, or LicenseRef-<name> for a license it lacks",
			"license %q is not an SPDX expression (%s)", expr, strings.Join(bad, ", "))
	}
}

// timeout checks a timeout: a positive Go duration.
func (v *validator) timeout(pos Pos, text string) {
	if text == "" {
		return
	}
	if d, err := time.ParseDuration(text); err != nil || d <= 0 {
		v.add(pos, "give a positive duration such as 90s, 30m or 2h", "timeout %q is not a positive duration", text)
	}
}

// renderURL expands {{mirror "name"}} in a version's url to the
// machine-independent mirror://name form that lock files keep.
func (v *validator) renderURL(s *Software, p string, ver *Version) {
	u, err := mirror.Render(ver.URL)
	if err != nil {
		v.add(s.At(p+".url"), `write an archive as {{mirror "debian"}}/pool/...; url takes no other template`, "url %q: %v", ver.URL, err)
		return
	}
	ver.URL = u
}

func (v *validator) version(s *Software, p string, ver Version) {
	at := s.At
	if ver.Version == "" {
		v.add(at(p), "add version: <x.y.z>", "version is required")
	} else if _, err := semver.NewVersion(ver.Version); err != nil && !ver.Exact {
		v.add(at(p+".version"), "use a semver version such as 1.2.3, or add exact: true to pin a version that is not semver", "version %q is not semver", ver.Version)
	} else if !safeVersion.MatchString(ver.Version) {
		// It goes into paths, file names and package versions through
		// {{.Version}}.
		v.add(at(p+".version"), "use letters, digits and . + ~ _ - (at most 128, starting with a letter or digit)", "version %q has characters a version may not have", ver.Version)
	}
	kinds := 0
	for _, k := range []string{ver.URL, ver.Git, ver.Path} {
		if k != "" {
			kinds++
		}
	}
	if kinds != 1 {
		v.add(at(p), "give exactly one of url (with sha256), git (with commit) or path", "version %s must have exactly one source, found %d", ver.Version, kinds)
	}
	switch {
	case ver.URL != "":
		u, err := url.Parse(ver.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file" && u.Scheme != mirror.Scheme) || (u.Scheme != "file" && u.Host == "") {
			v.add(at(p+".url"), `use an http://, https:// or file:// URL, or {{mirror "debian"}}/<path> for a package archive`, "url %q is not a usable URL", ver.URL)
		} else if _, _, ok := mirror.Ref(ver.URL); u.Scheme == mirror.Scheme && !ok {
			v.add(at(p+".url"), `write {{mirror "<name>"}}/<path>, with a lower-case archive name`, "url %q does not name a package archive", ver.URL)
		}
		if ver.SHA256 == "" && ver.SHA512 == "" {
			v.add(at(p), "add sha256: <64 hex digits> (sha256sum <file>) so the download can be verified", "version %s has no checksum: an unpinned url is refused", ver.Version)
		}
	case ver.Git != "":
		if !gitURL(ver.Git) {
			v.add(at(p+".git"), "give a repository URL: https://, http://, ssh://, git:// or file://, or user@host:path", "git %q is not a repository URL", ver.Git)
		}
		if ver.Tag != "" && !safeRef.MatchString(ver.Tag) {
			v.add(at(p+".tag"), "give a tag name of letters, digits and . _ / + -, starting with a letter or digit", "tag %q is not a plain tag name", ver.Tag)
		}
		if ver.Commit == "" {
			v.add(at(p), "add commit: <full 40-hex commit>; a tag or branch alone can move", "git source of %s is not pinned to a commit", ver.Version)
		} else if !hexCommit.MatchString(ver.Commit) {
			v.add(at(p+".commit"), "give the full lower-case commit hash (git rev-parse <tag>^{commit})", "commit %q is not a full commit hash", ver.Commit)
		}
	case ver.Path != "":
		if !filepath.IsLocal(ver.Path) {
			v.add(at(p+".path"), "give a path relative to software/, e.g. hello", "path %q must stay inside software/", ver.Path)
		} else if st, err := os.Lstat(filepath.Join(s.Files(v.repo.Root), ver.Path)); err != nil {
			v.add(at(p+".path"), "create it, or fix the path (relative to software/)", "path source %q does not exist", filepath.Join("software", ver.Path))
		} else if st.Mode()&fs.ModeSymlink != 0 {
			v.add(at(p+".path"), "keep the source itself under software/, not a link to it", "path source %q is a symlink; coach reads only what is in the repository", filepath.Join("software", ver.Path))
		}
	}
	if ver.URL == "" && (ver.SHA256 != "" || ver.SHA512 != "") {
		v.add(at(p), "remove the checksum: git sources are pinned by commit and path sources are hashed by coach", "a checksum applies only to url sources")
	}
	if ver.Git == "" && (ver.Commit != "" || ver.Tag != "") {
		v.add(at(p), "remove commit/tag, or add git: <repository URL>", "commit and tag apply only to git sources")
	}
	checkHex(v, at(p+".sha256"), "sha256", ver.SHA256, 64)
	checkHex(v, at(p+".sha512"), "sha512", ver.SHA512, 128)
	v.patches(s, p+".patches", ver.Patches)
}

// HexDigest reports whether sum is n lower-case hex digits, as a
// definition's sha256 (64) or sha512 (128) must be.
func HexDigest(sum string, n int) bool {
	_, err := hex.DecodeString(sum)
	return err == nil && len(sum) == n && strings.ToLower(sum) == sum
}

func checkHex(v *validator, pos Pos, field, sum string, n int) {
	if sum == "" {
		return
	}
	if !HexDigest(sum, n) {
		v.add(pos, fmt.Sprintf("give the %d lower-case hex digits printed by %ssum", n, field), "%s %q is not %d hex digits", field, sum, n)
	}
}

func (v *validator) patches(s *Software, p string, patches []string) {
	for i, patch := range patches {
		pp := fmt.Sprintf("%s[%d]", p, i)
		if !filepath.IsLocal(patch) {
			v.add(s.At(pp), "give a path relative to software/"+s.Name+"/", "patch %q must stay inside software/%s/", patch, s.Name)
			continue
		}
		if st, err := os.Lstat(filepath.Join(s.Files(v.repo.Root), s.Name, patch)); err != nil {
			v.add(s.At(pp), "put the patch file there, or fix the name", "patch software/%s/%s does not exist", s.Name, patch)
		} else if !st.Mode().IsRegular() {
			v.add(s.At(pp), "keep the patch itself under software/"+s.Name+"/, as a plain file", "patch software/%s/%s is not a regular file (a symlink or a directory)", s.Name, patch)
		}
	}
}

func (v *validator) env(file string, pos map[string]Pos, p string, env Env) {
	at := func(path string) Pos { return position(file, pos, path) }
	for k, val := range env {
		if !envName.MatchString(k) {
			v.add(keyPosition(file, pos, p+"."+k), "use letters, digits and _ and do not start with a digit", "environment variable name %q is not valid", k)
		}
		if _, err := v.checkTemplate(val); err != nil {
			v.add(at(p+"."+k), templateHint, "env %s: %s", k, templateError(err))
		}
	}
}

func (v *validator) project(name string, p *Project) {
	if p.broken("") {
		return
	}
	at := p.At
	if p.Name == "" {
		v.add(at("name"), "add name: "+name, "name is required")
	} else if p.Name != name {
		v.add(at("name"), fmt.Sprintf("rename the file to projects/%s.yaml or set name: %s", p.Name, name), "name %q does not match the file name %q", p.Name, name)
	}
	if !packageName.MatchString(name) {
		v.add(Pos{File: p.Path}, "package names are lower case letters, digits and + - ., at least two characters", "project name %q is not a valid package name", name)
	}
	for _, f := range []struct{ field, val, hint string }{
		{"description", p.Description, "add a one-line description: it is the package summary"},
		{"maintainer", p.Maintainer, "add maintainer: Name <email>; deb and rpm both require it"},
		{"license", p.License, "give an SPDX identifier such as Apache-2.0"},
		{"version", p.Version, "add version: 1.0.0"},
	} {
		if f.val == "" && !p.broken(f.field) {
			v.add(at(f.field), f.hint, "%s is required", f.field)
		}
	}
	if p.License != "" {
		v.license(at("license"), p.License)
	}
	switch {
	case p.Version == "":
	case version.IsDynamic(p.Version):
		if err := version.CheckTemplate(p.Version); err != nil {
			v.add(at("version"), `give git, or a template such as "1.4.0-nightly.{{.Date}}+g{{.Git.Commit}}"`, "version template: %v", err)
		}
	default:
		if _, err := semver.StrictNewVersion(strings.TrimPrefix(p.Version, "v")); err != nil {
			v.add(at("version"), "use major.minor.patch with an optional -prerelease (1.2.0, 1.2.0-rc.1), git, or a template", "version %q is not semver", p.Version)
		}
	}
	if p.Iteration < 0 {
		v.add(at("iteration"), "use 1 for the first package of a version", "iteration must be positive")
	}
	if p.Epoch < 0 {
		v.add(at("epoch"), "leave epoch out unless a version went backwards", "epoch must not be negative")
	}
	v.installDir(p)
	if len(p.Software) == 0 && !p.broken("software") {
		v.add(at("software"), "list the components to build, e.g. software: [hello]", "software is empty: the package would hold nothing")
	}
	seen := map[string]bool{}
	for i, s := range p.Software {
		sp := fmt.Sprintf("software[%d]", i)
		if seen[s] {
			v.add(at(sp), "remove the repeated entry", "component %q is listed twice", s)
		} else if v.repo.Software[s] == nil {
			v.add(at(sp), v.knownSoftwareHint(s), "component %q has no definition (software/%s.yaml)", s, s)
		}
		seen[s] = true
	}
	closure := v.closure(p.Software)
	for comp, constraint := range p.Overrides {
		op := "overrides." + comp
		for _, pr := range v.overrideProblems(closure, comp, constraint) {
			pos := at(op)
			if pr.onKey {
				pos = keyPosition(p.Path, p.pos, op)
			}
			v.add(pos, pr.hint, "%s", pr.msg)
		}
	}
	for name, t := range p.CustomTargets {
		tp := "custom_targets." + name
		if _, builtin := target.Builtin(name); builtin {
			v.add(keyPosition(p.Path, p.pos, tp), "choose a new name and set based_on: "+name, "custom target %q has the name of a built-in target", name)
			continue
		}
		if m, err := mirror.Render(t.Bootstrap.Mirror); err != nil {
			v.add(at(tp+".bootstrap.mirror"), `give a URL, or {{mirror "debian"}} for the archive of that name`, "custom target %s: bootstrap.mirror: %v", name, err)
		} else {
			t.Bootstrap.Mirror = m
			p.CustomTargets[name] = t
		}
		merged := t
		if t.BasedOn != "" {
			base, ok := target.Builtin(t.BasedOn)
			if !ok {
				v.add(at(tp+".based_on"), "choose one of "+strings.Join(target.BuiltinNames(), ", "), "based_on %q is not a built-in target", t.BasedOn)
				continue
			}
			merged = target.Merge(base, t)
		}
		merged.Name = name
		for field, msg := range merged.Validate() {
			v.add(at(tp+"."+field), "see coach targets --json for complete examples", "custom target %s: %s", name, msg)
		}
	}
	if len(p.Targets) == 0 && !p.broken("targets") {
		v.add(at("targets"), "list targets such as [debian-12]; coach targets shows them all", "targets is empty")
	}
	seenT := map[string]bool{}
	for i, t := range p.Targets {
		tp := fmt.Sprintf("targets[%d]", i)
		_, builtin := target.Builtin(t)
		_, custom := p.CustomTargets[t]
		switch {
		case seenT[t]:
			v.add(at(tp), "remove the repeated entry", "target %q is listed twice", t)
		case !builtin && !custom:
			v.add(at(tp), "choose one of "+strings.Join(target.BuiltinNames(), ", ")+", or define it in custom_targets", "unknown target %q", t)
		}
		seenT[t] = true
	}
	installDir := cmpOr(p.InstallDir, "/opt/"+name)
	for link, dest := range p.Package.Links {
		lp := "package.links." + link
		if !path.IsAbs(link) || path.Clean(link) != link {
			v.add(keyPosition(p.Path, p.pos, lp), "give a clean absolute path such as /usr/bin/"+name, "link %q must be a clean absolute path", link)
		} else if within(link, installDir) {
			v.add(keyPosition(p.Path, p.pos, lp), "links are for paths outside install_dir; put files inside it with the build", "link %q is inside install_dir", link)
		}
		if !path.IsAbs(dest) {
			v.add(at(lp), "point the link at an absolute path, usually under "+installDir, "link target %q must be absolute", dest)
		}
	}
	for i, cf := range p.Package.ConfigFiles {
		cp := fmt.Sprintf("package.config_files[%d]", i)
		if !path.IsAbs(cf) || path.Clean(cf) != cf {
			v.add(at(cp), "give a clean absolute path, e.g. "+installDir+"/etc/"+name+".conf", "config file %q must be a clean absolute path", cf)
		} else if !within(cf, installDir) && !within(cf, "/etc") {
			v.add(at(cp), "keep config files under install_dir or /etc", "config file %q is neither under %s nor /etc", cf, installDir)
		}
	}
	for _, f := range []struct{ field, val string }{{"package.compression.deb", p.Package.Compression.Deb}, {"package.compression.rpm", p.Package.Compression.RPM}} {
		switch f.val {
		case "", "gzip", "xz", "zstd", "none":
		default:
			v.add(at(f.field), "use gzip, xz, zstd or none", "compression %q is not supported", f.val)
		}
	}
	switch p.Health.Runpath {
	case "", "warning", "error":
	default:
		v.add(at("health.runpath"), "use warning or error", "health.runpath %q is neither warning nor error", p.Health.Runpath)
	}
	for i, g := range p.Health.Ignore {
		if !doublestar.ValidatePattern(g) || path.IsAbs(g) {
			v.add(at(fmt.Sprintf("health.ignore[%d]", i)), "give a glob relative to install_dir, e.g. embedded/share/**", "health.ignore %q is not a valid relative glob", g)
		}
	}
	for i, a := range p.Arches {
		if !target.ValidArch(a) {
			v.add(at(fmt.Sprintf("arches[%d]", i)), "use "+strings.Join(target.Arches, " or "), "architecture %q is not one coach builds for", a)
		}
	}
	for i, g := range p.Package.Exclude {
		if !doublestar.ValidatePattern(g) || path.IsAbs(g) || g == "" || g == "**" || slices.Contains(strings.Split(g, "/"), "..") {
			v.add(at(fmt.Sprintf("package.exclude[%d]", i)), "give a glob relative to install_dir, e.g. embedded/include/** or embedded/lib/*.a", "package.exclude %q is not a valid relative glob of some of the tree", g)
		}
	}
	for _, u := range []struct{ field, name string }{{"package.owner", p.Package.Owner}, {"package.group", p.Package.Group}} {
		if u.name != "" && !systemName.MatchString(u.name) {
			v.add(at(u.field), "use a lower-case system name of at most 32 characters, e.g. hello or _hello", "%s %q is not a valid user or group name", u.field, u.name)
		}
	}
	for i, u := range p.Package.Users {
		field := fmt.Sprintf("package.users[%d]", i)
		if !systemName.MatchString(u.Name) || u.Name == "root" {
			v.add(at(field+".name"), "use a lower-case system name of at most 32 characters, e.g. hello or _hello", "package.users name %q is not a valid system user name", u.Name)
		}
		if u.Group != "" && !systemName.MatchString(u.Group) {
			v.add(at(field+".group"), "use a lower-case system name of at most 32 characters", "package.users group %q is not a valid group name", u.Group)
		}
	}
	for i, f := range p.Package.Files {
		field := fmt.Sprintf("package.files[%d]", i)
		if f.Path != "." && (!doublestar.ValidatePattern(f.Path) || path.IsAbs(f.Path) || f.Path == "" || slices.Contains(strings.Split(f.Path, "/"), "..")) {
			v.add(at(field+".path"), "give a glob relative to install_dir, e.g. var/** or etc/secret.conf", "package.files path %q is not a valid relative glob", f.Path)
		}
		for _, u := range []string{f.Owner, f.Group} {
			if u != "" && !systemName.MatchString(u) {
				v.add(at(field), "use a lower-case system name of at most 32 characters", "%q is not a valid user or group name", u)
			}
		}
		if f.Mode != "" {
			if _, err := ParseMode(f.Mode); err != nil {
				v.add(at(field+".mode"), `give octal permission bits, e.g. "0750"`, "%v", err)
			}
		}
		if f.Owner == "" && f.Group == "" && f.Mode == "" {
			v.add(at(field), "set owner, group or mode", "package.files entry for %q changes nothing", f.Path)
		}
	}
	if c := p.Package.Changelog; c != "" && c != "git" && (path.IsAbs(c) || slices.Contains(strings.Split(path.Clean(c), "/"), "..")) {
		v.add(at("package.changelog"), "give git, or a file of the repository such as CHANGELOG.md", "package.changelog %q is not a path inside the repository", c)
	}
	for i, e := range p.Package.ExtraFiles {
		field := fmt.Sprintf("package.extra_files[%d]", i)
		switch {
		case e.Link != "":
			if e.Source != "" || e.Mode != "" || e.Config {
				v.add(at(field), "give source: (a file of the repository) or link: (a symbolic link's target), and mode or config only with source", "extra file %s is a link and has source, mode or config", e.Destination)
			}
			if !path.IsAbs(e.Link) {
				v.add(at(field+".link"), "point the link at an absolute path, e.g. /etc/pki/tls/cert.pem", "link target %q must be absolute", e.Link)
			}
		case e.Source == "" || path.IsAbs(e.Source) || slices.Contains(strings.Split(path.Clean(e.Source), "/"), ".."):
			v.add(at(field+".source"), "give a path inside the repository, e.g. files/hello.service, or link: for a symbolic link", "extra file source %q is not a relative path inside the repository", e.Source)
		}
		d := path.Clean(e.Destination)
		switch {
		case !path.IsAbs(e.Destination) || d == "/":
			v.add(at(field+".destination"), "give an absolute path, e.g. /lib/systemd/system/hello.service", "extra file destination %q is not an absolute file path", e.Destination)
		case p.InstallDir != "" && (d == path.Clean(p.InstallDir) || strings.HasPrefix(d, path.Clean(p.InstallDir)+"/")):
			v.add(at(field+".destination"), "install files under install_dir from a build step instead", "extra file destination %s is inside install_dir %s", d, p.InstallDir)
		}
		for j, f := range e.Formats {
			if f != target.FormatDeb && f != target.FormatRPM {
				v.add(at(fmt.Sprintf("%s.formats[%d]", field, j)), "use deb or rpm", "extra file format %q is neither deb nor rpm", f)
			}
		}
		for j, tn := range e.Targets {
			if !slices.Contains(p.Targets, tn) {
				v.add(at(fmt.Sprintf("%s.targets[%d]", field, j)), "name one of the project's targets: "+strings.Join(p.Targets, ", "), "extra file target %q is not one of the project's targets", tn)
			}
		}
		if e.Mode != "" {
			if _, err := ParseMode(e.Mode); err != nil {
				v.add(at(field+".mode"), `give octal permission bits, e.g. "0644"`, "%v", err)
			}
		}
	}
	for i, g := range p.Health.Allow {
		if _, err := path.Match(g, ""); err != nil {
			v.add(at(fmt.Sprintf("health.allow[%d]", i)), "give a soname or glob, e.g. libz.so.1 or libkrb5*.so.*", "health.allow %q is not a valid glob", g)
		}
	}
	for i, c := range p.Verify {
		if strings.TrimSpace(c) == "" {
			v.add(at(fmt.Sprintf("verify[%d]", i)), "remove the empty entry", "verify command is empty")
		}
	}
}

func (v *validator) installDir(p *Project) {
	d := p.InstallDir
	if d == "" {
		return
	}
	switch {
	case !path.IsAbs(d) || path.Clean(d) != d:
		v.add(p.At("install_dir"), "use a clean absolute path such as /opt/"+p.Name, "install_dir %q must be a clean absolute path", d)
	case d == "/":
		v.add(p.At("install_dir"), "use a directory of the package's own, such as /opt/"+p.Name, "install_dir must not be /")
	case !safeInstallDir.MatchString(d):
		v.add(p.At("install_dir"), "use letters, digits and . _ + - in each part, at least two parts deep, such as /opt/"+p.Name, "install_dir %q must be a path of plain names strictly below a top-level directory", d)
	default:
		for _, sys := range systemDirs {
			if within(d, sys) {
				v.add(p.At("install_dir"), "use a directory of the package's own, such as /opt/"+p.Name, "install_dir %q is inside the system directory %s, which belongs to the distribution", d, sys)
				break
			}
		}
	}
}

// closure is every component reachable from roots through dependencies.
func (v *validator) closure(roots []string) map[string]bool { return v.repo.Closure(roots) }

type overrideProblem struct {
	msg, hint string
	onKey     bool // the problem is the component's name, not the constraint
}

// overrideProblems checks one override: the component has a definition,
// the project uses it, and the constraint parses or names a listed
// version.
func (v *validator) overrideProblems(closure map[string]bool, comp, constraint string) []overrideProblem {
	if v.repo.Software[comp] == nil {
		return []overrideProblem{{fmt.Sprintf("override for %q, which has no definition", comp), v.knownSoftwareHint(comp), true}}
	}
	var out []overrideProblem
	if !closure[comp] {
		out = append(out, overrideProblem{fmt.Sprintf("override for %q, which the project does not use", comp), "remove the override, or add the component to software", true})
	}
	if _, err := semver.NewConstraint(constraint); err != nil && !hasExactVersion(v.repo.Software[comp], constraint) {
		out = append(out, overrideProblem{fmt.Sprintf("override %q for %s is neither a constraint nor a listed version", constraint, comp), "use a constraint such as ~1.3 or an exact listed version", false})
	}
	return out
}

// CheckOverrides applies the checks of a project's overrides to
// overrides given another way (the command line's --override), and
// returns every problem at once.
func (r *Repo) CheckOverrides(p *Project, overrides map[string]string) error {
	v := &validator{repo: r}
	closure := v.closure(p.Software)
	var errs []error
	for _, comp := range slices.Sorted(maps.Keys(overrides)) {
		for _, pr := range v.overrideProblems(closure, comp, overrides[comp]) {
			errs = append(errs, fmt.Errorf("--override %s=%s: %s\n\thint: %s", comp, overrides[comp], pr.msg, pr.hint))
		}
	}
	return errors.Join(errs...)
}

func (v *validator) knownSoftwareHint(name string) string {
	known := v.repo.SoftwareNames()
	best, bestDist := "", 1<<30
	for _, k := range known {
		if d := levenshtein(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= max(2, len(name)/3) {
		return fmt.Sprintf("did you mean %q? (or create software/%s.yaml: coach new software %s)", best, name, name)
	}
	return fmt.Sprintf("create software/%s.yaml (coach new software %s)", name, name)
}

func hasExactVersion(s *Software, version string) bool {
	return slices.ContainsFunc(s.Versions, func(v Version) bool { return v.Version == version })
}

func versionList(s *Software) string {
	var vs []string
	for _, v := range s.Versions {
		vs = append(vs, v.Version)
	}
	return strings.Join(vs, ", ")
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const templateHint = "templates may use {{.Name}} {{.Version}} {{.InstallDir}} {{.Embedded}} {{.Jobs}} {{.Target}} {{.Format}} {{.Arch}} {{.Multiarch}}"

// templateError shortens text/template's messages to what a user needs.
func templateError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "can't evaluate field "); i >= 0 {
		field, _, _ := strings.Cut(msg[i+len("can't evaluate field "):], " ")
		return fmt.Sprintf("unknown template variable .%s", field)
	}
	msg = strings.TrimPrefix(msg, "template: ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, ":") {
		msg = msg[i+2:]
	}
	return "bad template: " + msg
}

// cycles reports each dependency cycle among the software definitions once,
// at the dependencies entry that closes it, as the path around it.
func (v *validator) cycles() {
	const (
		unseen = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = onStack
		stack = append(stack, name)
		s := v.repo.Software[name]
		for i, dep := range s.Dependencies {
			if v.repo.Software[dep] == nil || dep == name {
				continue // reported where the dependency is checked
			}
			switch state[dep] {
			case unseen:
				visit(dep)
			case onStack:
				start := slices.Index(stack, dep)
				path := append(slices.Clone(stack[start:]), dep)
				v.add(s.At(fmt.Sprintf("dependencies[%d]", i)), "remove one of the dependencies on the path", "dependency cycle: %s", strings.Join(path, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, name := range v.repo.SoftwareNames() {
		if state[name] == unseen {
			visit(name)
		}
	}
}

// systemName is what useradd and adduser accept for a system user or
// group, kept to the portable subset.
var systemName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// ParseMode reads octal permission bits ("0750", "750").
func ParseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("mode %q is not octal permission bits", s)
	}
	m := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// ValidProjectName reports whether name can name a project (and its
// package).
func ValidProjectName(name string) bool { return packageName.MatchString(name) }
