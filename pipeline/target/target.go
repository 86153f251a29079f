// Package target holds the catalogue of distributions coach builds for: how to
// get a build root for each, which system libraries a package may rely on
// there, and how its packages are named.
package target

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Target is one distribution release that packages are built for.
// The yaml tags are the format of a project's custom_targets entries.
type Target struct {
	Name string `yaml:"-" json:"name"`
	// BasedOn names a catalogue target whose fields this one starts from.
	BasedOn string `yaml:"based_on" json:"based_on,omitempty" doc:"a built-in target to start from; fields given here replace its values"`
	// Family is debian, ubuntu, rhel or amazon.
	Family string `yaml:"family" json:"family" doc:"distribution family: debian, ubuntu, rhel or amazon"`
	// Format is the package format: deb or rpm.
	Format string `yaml:"format" json:"format" doc:"package format: deb or rpm"`
	// Image is the OCI image the dagger runner starts from.
	Image string `yaml:"image" json:"image" doc:"OCI image reference for container runners, e.g. docker.io/library/debian:12"`
	// Bootstrap says how the sandbox runner makes a root filesystem.
	Bootstrap Bootstrap `yaml:"bootstrap" json:"bootstrap"`
	// Toolchain lists the distro packages every builder needs.
	Toolchain []string `yaml:"toolchain" json:"toolchain" doc:"distro packages every build root of this target gets (compiler, make, ...)"`
	// LibDirs are the system library directories, in ld.so search order, used
	// when the root filesystem's ld.so.conf cannot be read.
	LibDirs []string `yaml:"lib_dirs" json:"lib_dirs" doc:"system library directories in ld.so search order"`
	// Allow lists shell globs of sonames a package may load from the system.
	Allow []string `yaml:"allow" json:"allow" doc:"sonames (shell globs) that binaries may load from the system"`
	// DistTag goes into package versions and file names (deb12, el9, ...).
	DistTag string `yaml:"dist_tag" json:"dist_tag" doc:"distribution tag used in package versions, e.g. deb12 or el9"`
	// Compression is the default package compression for this target.
	Compression string `yaml:"compression" json:"compression" doc:"default package compression: gzip, xz or zstd"`
	// Glibc is the C library version of the release, the floor of what runs.
	Glibc string `yaml:"glibc" json:"glibc" doc:"glibc version of the release, e.g. 2.36"`
}

// Bootstrap describes how to create a root filesystem without a registry.
type Bootstrap struct {
	Tool       string   `yaml:"tool" json:"tool,omitempty" doc:"mmdebstrap for the Debian family; empty where the target can only come from an image"`
	Suite      string   `yaml:"suite" json:"suite,omitempty" doc:"release codename, e.g. bookworm"`
	Mirror     string   `yaml:"mirror" json:"mirror,omitempty" doc:"package mirror URL, or {{mirror \"debian\"}} for the archive of that name (from $COACH_MIRROR_DEBIAN or the host's apt sources)"`
	Components []string `yaml:"components" json:"components,omitempty" doc:"archive components, e.g. [main]"`
}

const (
	FormatDeb = "deb"
	FormatRPM = "rpm"
)

// Formats are the package formats coach writes.
var Formats = []string{FormatDeb, FormatRPM}

// baseAllow is what every glibc distribution provides to every program: the
// C library and its split-out parts, the dynamic loader, and the compiler's
// runtime support libraries.
var baseAllow = []string{
	"linux-vdso.so.1", "linux-gate.so.1",
	"ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "ld-linux.so.2",
	"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
	"libresolv.so.2", "libutil.so.1", "libanl.so.1",
	"libgcc_s.so.1", "libstdc++.so.6",
}

var debianToolchain = []string{"build-essential", "pkg-config", "perl", "ca-certificates", "patch", "file"}
var rpmToolchain = []string{"gcc", "gcc-c++", "make", "pkgconf-pkg-config", "perl", "patch", "file", "findutils", "diffutils", "tar", "gzip", "bzip2", "xz"}

func debian(version, suite, glibc, compression string) Target {
	return Target{
		Name: "debian-" + version, Family: "debian", Format: FormatDeb,
		Image:       "docker.io/library/debian:" + suite,
		Bootstrap:   Bootstrap{Tool: "mmdebstrap", Suite: suite, Mirror: "mirror://debian", Components: []string{"main"}},
		Toolchain:   debianToolchain,
		LibDirs:     debianLibDirs,
		Allow:       append(slices.Clone(baseAllow), "libcrypt.so.1"),
		DistTag:     "deb" + version,
		Compression: compression,
		Glibc:       glibc,
	}
}

func ubuntu(version, suite, glibc string) Target {
	return Target{
		Name: "ubuntu-" + version, Family: "ubuntu", Format: FormatDeb,
		Image:       "docker.io/library/ubuntu:" + version,
		Bootstrap:   Bootstrap{Tool: "mmdebstrap", Suite: suite, Mirror: "mirror://ubuntu", Components: []string{"main", "universe"}},
		Toolchain:   debianToolchain,
		LibDirs:     debianLibDirs,
		Allow:       append(slices.Clone(baseAllow), "libcrypt.so.1"),
		DistTag:     "ubuntu" + version,
		Compression: "zstd",
		Glibc:       glibc,
	}
}

func rhel(name, image, distTag, glibc, compression, crypt string) Target {
	return Target{
		Name: name, Family: "rhel", Format: FormatRPM,
		Image:       image,
		Toolchain:   rpmToolchain,
		LibDirs:     []string{"/lib64", "/usr/lib64"},
		Allow:       append(slices.Clone(baseAllow), crypt),
		DistTag:     distTag,
		Compression: compression,
		Glibc:       glibc,
	}
}

// debianLibDirs are the multiarch library dirs; "$MULTIARCH" is replaced by
// the build architecture's triplet (x86_64-linux-gnu, aarch64-linux-gnu).
var debianLibDirs = []string{"/lib/$MULTIARCH", "/usr/lib/$MULTIARCH", "/lib", "/usr/lib"}

var builtin = map[string]Target{}

func init() {
	for _, t := range []Target{
		debian("11", "bullseye", "2.31", "xz"), // dpkg 1.20 cannot read zstd members
		debian("12", "bookworm", "2.36", "zstd"),
		debian("13", "trixie", "2.41", "zstd"),
		ubuntu("22.04", "jammy", "2.35"),
		ubuntu("24.04", "noble", "2.39"),
		rhel("el8", "docker.io/library/almalinux:8", "el8", "2.28", "xz", "libcrypt.so.1"),
		rhel("el9", "docker.io/library/almalinux:9", "el9", "2.34", "zstd", "libcrypt.so.2"),
		rhel("amazonlinux-2023", "docker.io/library/amazonlinux:2023", "amzn2023", "2.34", "zstd", "libcrypt.so.2"),
	} {
		builtin[t.Name] = t
	}
	amzn := builtin["amazonlinux-2023"]
	amzn.Family = "amazon"
	builtin["amazonlinux-2023"] = amzn
}

// Builtin returns a copy of the built-in catalogue target called name.
func Builtin(name string) (Target, bool) {
	t, ok := builtin[name]
	if !ok {
		return Target{}, false
	}
	return t.clone(), true
}

// BuiltinNames lists the catalogue in sorted order.
func BuiltinNames() []string { return slices.Sorted(maps.Keys(builtin)) }

func (t Target) clone() Target {
	t.Toolchain = slices.Clone(t.Toolchain)
	t.LibDirs = slices.Clone(t.LibDirs)
	t.Allow = slices.Clone(t.Allow)
	t.Bootstrap.Components = slices.Clone(t.Bootstrap.Components)
	return t
}

// Merge returns base with every field that over sets replaced by over's value.
func Merge(base, over Target) Target {
	out := base.clone()
	out.Name = over.Name
	out.BasedOn = over.BasedOn
	setIf := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setIf(&out.Family, over.Family)
	setIf(&out.Format, over.Format)
	setIf(&out.Image, over.Image)
	setIf(&out.DistTag, over.DistTag)
	setIf(&out.Compression, over.Compression)
	setIf(&out.Glibc, over.Glibc)
	setIf(&out.Bootstrap.Tool, over.Bootstrap.Tool)
	setIf(&out.Bootstrap.Suite, over.Bootstrap.Suite)
	setIf(&out.Bootstrap.Mirror, over.Bootstrap.Mirror)
	if over.Bootstrap.Components != nil {
		out.Bootstrap.Components = slices.Clone(over.Bootstrap.Components)
	}
	if over.Toolchain != nil {
		out.Toolchain = slices.Clone(over.Toolchain)
	}
	if over.LibDirs != nil {
		out.LibDirs = slices.Clone(over.LibDirs)
	}
	if over.Allow != nil {
		out.Allow = slices.Clone(over.Allow)
	}
	return out
}

// SystemLibDirs returns the target's library dirs for an architecture.
func (t Target) SystemLibDirs(goarch string) []string {
	out := make([]string, len(t.LibDirs))
	for i, d := range t.LibDirs {
		out[i] = strings.ReplaceAll(d, "$MULTIARCH", Multiarch(goarch))
	}
	return out
}

// Validate reports what is wrong with a (merged) target definition. Each
// string names the field so the caller can place it.
func (t Target) Validate() map[string]string {
	bad := map[string]string{}
	if !slices.Contains(Formats, t.Format) {
		bad["format"] = fmt.Sprintf("format must be deb or rpm, not %q", t.Format)
	}
	if t.DistTag == "" {
		bad["dist_tag"] = "dist_tag is required"
	}
	switch t.Compression {
	case "gzip", "xz", "zstd", "none":
	default:
		bad["compression"] = fmt.Sprintf("compression must be gzip, xz, zstd or none, not %q", t.Compression)
	}
	if t.Image == "" && t.Bootstrap.Tool == "" {
		bad["image"] = "a target needs an image, a bootstrap recipe, or both"
	}
	if t.Bootstrap.Tool != "" && t.Bootstrap.Tool != "mmdebstrap" {
		bad["bootstrap.tool"] = fmt.Sprintf("bootstrap.tool must be mmdebstrap, not %q", t.Bootstrap.Tool)
	}
	if t.Bootstrap.Tool != "" && (t.Bootstrap.Suite == "" || t.Bootstrap.Mirror == "") {
		bad["bootstrap"] = "bootstrap needs suite and mirror"
	}
	for _, d := range t.LibDirs {
		if !strings.HasPrefix(d, "/") {
			bad["lib_dirs"] = fmt.Sprintf("lib_dirs entries must be absolute, not %q", d)
		}
	}
	return bad
}
