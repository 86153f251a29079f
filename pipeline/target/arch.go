package target

import (
	"debug/elf"
	"runtime"
	"slices"
)

// Arch is one architecture by every name the tools coach drives give it.
// Go's name (GOARCH) is coach's own: definitions, flags, reports and
// the lock file use it, and every other name is looked up here, in one
// table, never spelled in a switch elsewhere.
type Arch struct {
	Go        string // GOARCH: amd64
	Deb       string // dpkg, apt and mmdebstrap --architectures: amd64
	RPM       string // rpm: x86_64
	Multiarch string // Debian's multiarch triplet, and binutils' prefix: x86_64-linux-gnu
	Qemu      string // qemu-user and its binfmt_misc entry: x86_64 (qemu-x86_64-static)
	// Binutils is the Debian package of the cross binutils that read this
	// architecture's files (its strip is Multiarch + "-strip").
	Binutils string
	Machine  elf.Machine
	Class    elf.Class
	// Interp is the dynamic loader every process of the architecture
	// has loaded first; Platform is what the loader expands $PLATFORM to.
	Interp, Platform string
	// Builds says coach builds packages for it (Arches); the others are
	// here so that the health check can name what it finds.
	Builds bool
}

// archTable is every architecture coach knows.
var archTable = []Arch{
	{Go: "amd64", Deb: "amd64", RPM: "x86_64", Multiarch: "x86_64-linux-gnu", Qemu: "x86_64", Binutils: "binutils-x86-64-linux-gnu",
		Machine: elf.EM_X86_64, Class: elf.ELFCLASS64, Interp: "/lib64/ld-linux-x86-64.so.2", Platform: "x86_64", Builds: true},
	{Go: "arm64", Deb: "arm64", RPM: "aarch64", Multiarch: "aarch64-linux-gnu", Qemu: "aarch64", Binutils: "binutils-aarch64-linux-gnu",
		Machine: elf.EM_AARCH64, Class: elf.ELFCLASS64, Interp: "/lib/ld-linux-aarch64.so.1", Platform: "aarch64", Builds: true},
	{Go: "386", Deb: "i386", RPM: "i386", Multiarch: "i386-linux-gnu", Qemu: "i386", Binutils: "binutils-i686-linux-gnu",
		Machine: elf.EM_386, Class: elf.ELFCLASS32, Interp: "/lib/ld-linux.so.2", Platform: "i686"},
	{Go: "arm", Deb: "armhf", RPM: "armv7hl", Multiarch: "arm-linux-gnueabihf", Qemu: "arm", Binutils: "binutils-arm-linux-gnueabihf",
		Machine: elf.EM_ARM, Class: elf.ELFCLASS32, Interp: "/lib/ld-linux-armhf.so.3"},
	{Go: "ppc64le", Deb: "ppc64el", RPM: "ppc64le", Multiarch: "powerpc64le-linux-gnu", Qemu: "ppc64le", Binutils: "binutils-powerpc64le-linux-gnu",
		Machine: elf.EM_PPC64, Class: elf.ELFCLASS64, Interp: "/lib64/ld64.so.2"},
	{Go: "s390x", Deb: "s390x", RPM: "s390x", Multiarch: "s390x-linux-gnu", Qemu: "s390x", Binutils: "binutils-s390x-linux-gnu",
		Machine: elf.EM_S390, Class: elf.ELFCLASS64, Interp: "/lib/ld64.so.1"},
	{Go: "riscv64", Deb: "riscv64", RPM: "riscv64", Multiarch: "riscv64-linux-gnu", Qemu: "riscv64", Binutils: "binutils-riscv64-linux-gnu",
		Machine: elf.EM_RISCV, Class: elf.ELFCLASS64, Interp: "/lib/ld-linux-riscv64-lp64d.so.1"},
}

// Arches are the architectures coach builds for (Go's names).
var Arches = func() []string {
	var out []string
	for _, a := range archTable {
		if a.Builds {
			out = append(out, a.Go)
		}
	}
	return out
}()

// ArchOf looks an architecture up by any of its names (Go's, Debian's,
// rpm's, qemu's), as a package's file name or a user may give it.
func ArchOf(name string) (Arch, bool) {
	i := slices.IndexFunc(archTable, func(a Arch) bool {
		return name != "" && (a.Go == name || a.Deb == name || a.RPM == name || a.Qemu == name)
	})
	if i < 0 {
		return Arch{}, false
	}
	return archTable[i], true
}

// ArchOfMachine is the architecture of an ELF machine (each machine in
// the table is one architecture).
func ArchOfMachine(m elf.Machine) (Arch, bool) {
	i := slices.IndexFunc(archTable, func(a Arch) bool { return a.Machine == m })
	if i < 0 {
		return Arch{}, false
	}
	return archTable[i], true
}

// LookupArch is the architecture of a Go name; an unknown one has its
// own name for every name, so that messages still say what was asked.
func LookupArch(goarch string) Arch {
	if a, ok := ArchOf(goarch); ok && a.Go == goarch {
		return a
	}
	return Arch{Go: goarch, Deb: goarch, RPM: goarch, Multiarch: goarch + "-linux-gnu", Qemu: goarch, Binutils: "binutils-" + goarch + "-linux-gnu",
		Class: elf.ELFCLASS64}
}

// OCIPlatform is the architecture's OCI platform, "linux/amd64".
func (a Arch) OCIPlatform() string { return "linux/" + a.Go }

// Strip is binutils' strip for the architecture's files.
func (a Arch) Strip() string { return a.Multiarch + "-strip" }

// HostArch is the architecture packages are built for by default.
func HostArch() string { return runtime.GOARCH }

// Foreign is the other architecture coach builds for on this host (the
// one that runs under emulation).
func Foreign() string {
	for _, a := range Arches {
		if a != HostArch() {
			return a
		}
	}
	return HostArch()
}

// ValidArch reports whether coach builds for an architecture.
func ValidArch(a string) bool { return slices.Contains(Arches, a) }

// Multiarch returns the Debian multiarch triplet for a Go architecture name.
func Multiarch(goarch string) string { return LookupArch(goarch).Multiarch }

// PackageArch is a package format's name for a Go architecture: Debian's
// (amd64, arm64, i386, armhf, ppc64el) for deb and for everything else
// Debian-made (mmdebstrap's --architectures), rpm's (x86_64, aarch64)
// for rpm.
func PackageArch(format, goarch string) string {
	if format == FormatRPM {
		return LookupArch(goarch).RPM
	}
	return LookupArch(goarch).Deb
}
