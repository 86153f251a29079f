// Package spec loads and checks coach's definitions: projects/<name>.yaml,
// software/<name>.yaml and the hooks under scripts/<project>/. Decoding is
// strict and every problem is reported at once, each with file:line:col and a
// hint. Defaults are applied after validation, never instead of it.
package spec

import (
	"cmp"
	"maps"
	"path"
	"path/filepath"
	"slices"

	"github.com/coach-build/coach/pipeline/target"
)

// Project describes one package: what goes in it and for which targets.
type Project struct {
	Name        string `yaml:"name" json:"name" doc:"package name; must equal the file name"`
	Description string `yaml:"description" json:"description" doc:"one-line summary, then optional longer text"`
	Maintainer  string `yaml:"maintainer" json:"maintainer" doc:"Name <email> of whoever answers for the package"`
	Vendor      string `yaml:"vendor" json:"vendor,omitempty" doc:"organisation that ships the package (rpm Vendor)"`
	Homepage    string `yaml:"homepage" json:"homepage,omitempty" doc:"project home page URL"`
	License     string `yaml:"license" json:"license" doc:"SPDX license expression of the project itself, checked against the SPDX license list (LicenseRef-<name> for a license it lacks)"`
	Version     string `yaml:"version" json:"version" doc:"package version: semver (1.2.0, 1.2.0-rc.1); git (git describe of the repository: v1.4.0 is 1.4.0, 5 commits later 1.4.1-dev.5+g<commit>); or a template over .Git.Tag, .Git.Distance, .Git.Commit, .Git.Dirty, .Semver, .Date (yyyymmdd) and .Env"`
	Iteration   int    `yaml:"iteration" json:"iteration" doc:"package revision, deb -N and rpm Release; default 1"`
	Epoch       int    `yaml:"epoch" json:"epoch,omitempty" doc:"package epoch; only to recover from a version mistake"`
	InstallDir  string `yaml:"install_dir" json:"install_dir" doc:"absolute prefix everything is built into; default /opt/<name>"`
	// Software lists the top-level components; their dependencies come in
	// transitively.
	Software []string `yaml:"software" json:"software" doc:"top-level components (software/<name>.yaml); dependencies come in transitively"`
	// Overrides maps a component to a semver constraint or exact version that
	// replaces its default_version.
	Overrides     map[string]string        `yaml:"overrides" json:"overrides,omitempty" doc:"component -> semver constraint or exact version, replacing its default_version"`
	Targets       []string                 `yaml:"targets" json:"targets" doc:"targets to build for, from the catalogue (coach targets) or custom_targets"`
	Arches        []string                 `yaml:"arches" json:"arches,omitempty" doc:"architectures to build for (amd64, arm64); a foreign one builds under qemu-user emulation; default the machine's own"`
	CustomTargets map[string]target.Target `yaml:"custom_targets" json:"custom_targets,omitempty" doc:"extra targets for this project, usually based_on a built-in one"`
	Package       Package                  `yaml:"package" json:"package"`
	Health        Health                   `yaml:"health" json:"health"`
	Verify        []string                 `yaml:"verify" json:"verify,omitempty" doc:"shell commands run after installing the package in a clean target"`

	// Path is the file the project was loaded from; Dir the repository root.
	Path string `yaml:"-" json:"-"`
	// Hooks maps hook file names found under scripts/<name>/ (postinst,
	// postinst.deb, postinst.debian-12, ...) to their paths.
	Hooks map[string]string `yaml:"-" json:"hooks,omitempty"`
	pos   map[string]Pos
}

// Package holds what goes into the package besides the built tree.
type Package struct {
	Links               map[string]string `yaml:"links" json:"links,omitempty" doc:"absolute link path -> target, e.g. /usr/bin/hello: /opt/hello/bin/hello"`
	ConfigFiles         []string          `yaml:"config_files" json:"config_files,omitempty" doc:"files kept on upgrade if changed: deb conffiles, rpm %config(noreplace)"`
	RuntimeDependencies PerFormat         `yaml:"runtime_dependencies" json:"runtime_dependencies"`
	Conflicts           []string          `yaml:"conflicts" json:"conflicts,omitempty" doc:"packages that cannot be installed alongside"`
	Replaces            []string          `yaml:"replaces" json:"replaces,omitempty" doc:"packages whose files this one takes over"`
	Provides            []string          `yaml:"provides" json:"provides,omitempty" doc:"virtual packages this one provides"`
	Compression         FormatString      `yaml:"compression" json:"compression" doc:"override the target's default compression per format"`
	Section             string            `yaml:"section" json:"section,omitempty" doc:"deb Section / rpm Group; default misc"`
	Strip               *bool             `yaml:"strip" json:"strip,omitempty" doc:"strip ELF executables and shared libraries in the package (default true)"`
	Exclude             []string          `yaml:"exclude" json:"exclude,omitempty" doc:"globs, relative to install_dir, of files left out of the package (and of the health check, where a shipped file that needs one is an error); ** is any number of directories, {a,b} either"`
	Owner               string            `yaml:"owner" json:"owner,omitempty" doc:"system user that owns everything under install_dir; the package's preinst (deb) or %pre (rpm) creates it when missing; default root"`
	Group               string            `yaml:"group" json:"group,omitempty" doc:"group that owns everything under install_dir, created like owner; default owner's own group, or root"`
	Files               []FileAttrs       `yaml:"files" json:"files,omitempty" doc:"per-path owner, group and mode under install_dir, later entries winning over earlier ones and over owner and group"`
	Changelog           string            `yaml:"changelog" json:"changelog,omitempty" doc:"the package changelog's source: a Keep a Changelog file of the repository (CHANGELOG.md), or git (the version tags' commits); default one entry for the version built"`
	ExtraFiles          []ExtraFile       `yaml:"extra_files" json:"extra_files,omitempty" doc:"files of the project's repository installed outside install_dir (a systemd unit, an /etc/default file), owned by root"`
	Users               []Account         `yaml:"users" json:"users,omitempty" doc:"system accounts the package creates (preinst, %pre) whether or not they own files: a service's user, which owns only what package.files or a hook gives it"`
}

// Account is a system user the package creates, in its own group unless
// group names another.
type Account struct {
	Name  string `yaml:"name" json:"name" doc:"the user's name"`
	Group string `yaml:"group" json:"group,omitempty" doc:"its primary group, created too; default a group of its own name"`
}

// FileAttrs sets the owner, group or mode of the paths a glob matches.
type FileAttrs struct {
	Path  string `yaml:"path" json:"path" doc:"glob relative to install_dir (the same grammar as exclude); install_dir itself is ."`
	Owner string `yaml:"owner" json:"owner,omitempty" doc:"user; root, package.owner, or another user the hooks create"`
	Group string `yaml:"group" json:"group,omitempty" doc:"group"`
	Mode  string `yaml:"mode" json:"mode,omitempty" doc:"octal permission bits, e.g. \"0750\""`
}

// ExtraFile is a file of the repository installed at a fixed path.
type ExtraFile struct {
	Source      string `yaml:"source" json:"source,omitempty" doc:"path relative to the repository root"`
	Destination string `yaml:"destination" json:"destination" doc:"absolute install path outside install_dir"`
	// Link makes the entry a symbolic link (instead of a file of the
	// repository): for a link that differs per format or target, which
	// package.links cannot say.
	Link   string `yaml:"link" json:"link,omitempty" doc:"make destination a symbolic link to this absolute path instead of installing source (with formats: or targets:, a link that differs per format or target)"`
	Mode   string `yaml:"mode" json:"mode,omitempty" doc:"octal permission bits; default 0644"`
	Config bool   `yaml:"config" json:"config,omitempty" doc:"a config file: deb conffile, rpm %config(noreplace)"`
	// Formats and Targets restrict the file to some packages.
	Formats []string `yaml:"formats" json:"formats,omitempty" doc:"only in packages of these formats (deb, rpm); default every format"`
	Targets []string `yaml:"targets" json:"targets,omitempty" doc:"only in packages for these targets of the project; default every target"`
}

// For reports whether the file goes into the package for t.
func (e ExtraFile) For(t target.Target) bool {
	return (len(e.Formats) == 0 || slices.Contains(e.Formats, t.Format)) && (len(e.Targets) == 0 || slices.Contains(e.Targets, t.Name))
}

// LinksFor is every link the package for t holds: package.links and the
// extra files that are links for t.
func (p Package) LinksFor(t target.Target) map[string]string {
	out := maps.Clone(p.Links)
	for _, e := range p.ExtraFiles {
		if e.Link != "" && e.For(t) {
			if out == nil {
				out = map[string]string{}
			}
			out[path.Clean(e.Destination)] = e.Link
		}
	}
	return out
}

// FileOwner is the owner and group of everything under install_dir.
func (p Package) FileOwner() (user, group string) {
	user = cmp.Or(p.Owner, "root")
	group = cmp.Or(p.Group, user)
	return user, group
}

// StripBinaries reports whether packaging strips ELF files.
func (p Package) StripBinaries() bool { return p.Strip == nil || *p.Strip }

// PerFormat is a list that differs between deb and rpm (package names do).
type PerFormat struct {
	Deb []string `yaml:"deb" json:"deb,omitempty" doc:"for deb targets"`
	RPM []string `yaml:"rpm" json:"rpm,omitempty" doc:"for rpm targets"`
}

// For returns the list for a format.
func (p PerFormat) For(format string) []string {
	if format == target.FormatRPM {
		return p.RPM
	}
	return p.Deb
}

// FormatString is a single value that differs between deb and rpm.
type FormatString struct {
	Deb string `yaml:"deb" json:"deb,omitempty" doc:"for deb targets"`
	RPM string `yaml:"rpm" json:"rpm,omitempty" doc:"for rpm targets"`
}

// Health configures the linkage health check.
type Health struct {
	Allow  []string `yaml:"allow" json:"allow,omitempty" doc:"extra sonames (shell globs) that may resolve to the system"`
	Ignore []string `yaml:"ignore" json:"ignore,omitempty" doc:"globs, relative to install_dir, of files the check skips"`
	// Runpath is how an RPATH or RUNPATH entry outside install_dir counts.
	Runpath string `yaml:"runpath" json:"runpath,omitempty" doc:"how an RPATH or RUNPATH entry that leads outside install_dir (a build directory, a relative path, $ORIGIN climbing out) counts: warning (the default) or error"`
}

// Software describes one component and the versions of it coach can build.
type Software struct {
	Name           string    `yaml:"name" json:"name" doc:"component name; must equal the file name"`
	Description    string    `yaml:"description" json:"description,omitempty"`
	Homepage       string    `yaml:"homepage" json:"homepage,omitempty"`
	License        string    `yaml:"license" json:"license" doc:"SPDX license expression, checked against the SPDX license list (LicenseRef-<name> for a license it lacks)"`
	LicenseFiles   []string  `yaml:"license_files" json:"license_files,omitempty" doc:"files in the source tree that carry the license text"`
	DefaultVersion string    `yaml:"default_version" json:"default_version,omitempty" doc:"semver constraint used when the project sets none; default: the highest version"`
	Versions       []Version `yaml:"versions" json:"versions,omitempty" doc:"every version coach may build, each pinned to its source"`
	URLTemplate    string    `yaml:"url_template" json:"url_template,omitempty" doc:"the download URL of any version, for coach bump and coach outdated: a template over .Version, e.g. https://zlib.net/fossils/zlib-{{.Version}}.tar.gz (default: the highest version's URL with its version replaced)"`
	RelativePath   string    `yaml:"relative_path" json:"relative_path,omitempty" doc:"directory inside the unpacked source to build in; a template, e.g. zlib-{{.Version}}"`
	Dependencies   []string  `yaml:"dependencies" json:"dependencies,omitempty" doc:"components this one builds against (software/<name>.yaml)"`
	BuildPackages  PerFormat `yaml:"build_packages" json:"build_packages" doc:"distro packages the builder needs (autoconf, ...), per format"`
	Env            Env       `yaml:"env" json:"env,omitempty" doc:"extra environment for every build step; values are templates"`
	Patches        []string  `yaml:"patches" json:"patches,omitempty" doc:"patch files under software/<name>/, applied with patch -p1 before building"`
	Build          []Step    `yaml:"build" json:"build" doc:"build steps, run in order in the source directory"`
	Timeout        string    `yaml:"timeout" json:"timeout,omitempty" doc:"stop the build when all its steps together run longer, e.g. 2h (a Go duration); not part of the cache key"`

	Path string `yaml:"-" json:"-"`
	// Dir holds the files the definition names (patches under
	// <Dir>/<name>/, path sources): a library's software/ directory;
	// empty for the repository's own (see Files). Library names the
	// library the definition comes from.
	Dir     string `yaml:"-" json:"-"`
	Library string `yaml:"-" json:"-"`
	pos     map[string]Pos
}

// Files is the directory the definition's patches and path sources are
// relative to: its library's software/, else root's.
func (s *Software) Files(root string) string {
	if s.Dir != "" {
		return s.Dir
	}
	return filepath.Join(root, "software")
}

// Env is an environment mapping.
type Env map[string]string

// Version is one buildable version and the single source it comes from:
// exactly one of url, git or path.
type Version struct {
	Version string   `yaml:"version" json:"version" doc:"semver version; set exact: true for a version that is not semver"`
	Exact   bool     `yaml:"exact" json:"exact,omitempty" doc:"the version is not semver and can only be chosen by naming it exactly"`
	URL     string   `yaml:"url" json:"url,omitempty" doc:"http(s) or file URL of a release archive"`
	SHA256  string   `yaml:"sha256" json:"sha256,omitempty" doc:"sha256 of the url's bytes, 64 hex digits"`
	SHA512  string   `yaml:"sha512" json:"sha512,omitempty" doc:"sha512 of the url's bytes, 128 hex digits"`
	Git     string   `yaml:"git" json:"git,omitempty" doc:"git repository URL"`
	Commit  string   `yaml:"commit" json:"commit,omitempty" doc:"full 40-hex commit the git source is pinned to"`
	Tag     string   `yaml:"tag" json:"tag,omitempty" doc:"tag that must resolve to commit (informational pin check)"`
	Path    string   `yaml:"path" json:"path,omitempty" doc:"directory or archive relative to software/, kept in this repository"`
	Patches []string `yaml:"patches" json:"patches,omitempty" doc:"patches for this version only, applied after the definition's patches"`
}

// SourceKind is url, git or path.
func (v Version) SourceKind() string {
	switch {
	case v.URL != "":
		return "url"
	case v.Git != "":
		return "git"
	case v.Path != "":
		return "path"
	}
	return ""
}

// Step is one build step: a shell command line, or an argv list run without a
// shell. The mapping form adds a name, a working directory and environment.
type Step struct {
	Name string   `yaml:"name" json:"name,omitempty" doc:"label shown in progress and errors"`
	Run  string   `yaml:"run" json:"run,omitempty" doc:"shell command line, run with sh -e -c"`
	Argv []string `yaml:"argv" json:"argv,omitempty" doc:"program and arguments, run without a shell"`
	Dir  string   `yaml:"dir" json:"dir,omitempty" doc:"working directory relative to the source directory"`
	Env  Env      `yaml:"env" json:"env,omitempty" doc:"environment for this step only"`
	// Timeout stops the step when it runs longer: a hung configure fails
	// the build instead of hanging CI.
	Timeout string `yaml:"timeout" json:"timeout,omitempty" doc:"stop the step when it runs longer, e.g. 30m (a Go duration); not part of the cache key"`
}

// Label names a step in messages: its name, or its command line.
func (s Step) Label() string {
	if s.Name != "" {
		return s.Name
	}
	if s.Run != "" {
		return s.Run
	}
	return ShellJoin(s.Argv)
}
