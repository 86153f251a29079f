package target

import (
	"slices"
	"testing"
)

func TestCatalogue(t *testing.T) {
	want := []string{"amazonlinux-2023", "debian-11", "debian-12", "debian-13", "el8", "el9", "ubuntu-22.04", "ubuntu-24.04"}
	if got := BuiltinNames(); !slices.Equal(got, want) {
		t.Fatalf("catalogue = %v, want %v", got, want)
	}
	tests := []struct {
		name, format, distTag, glibc, family string
		bootstrap                            bool
	}{
		{"debian-11", "deb", "deb11", "2.31", "debian", true},
		{"debian-12", "deb", "deb12", "2.36", "debian", true},
		{"debian-13", "deb", "deb13", "2.41", "debian", true},
		{"ubuntu-22.04", "deb", "ubuntu22.04", "2.35", "ubuntu", true},
		{"ubuntu-24.04", "deb", "ubuntu24.04", "2.39", "ubuntu", true},
		{"el8", "rpm", "el8", "2.28", "rhel", false},
		{"el9", "rpm", "el9", "2.34", "rhel", false},
		{"amazonlinux-2023", "rpm", "amzn2023", "2.34", "amazon", false},
	}
	for _, tt := range tests {
		tg, ok := Builtin(tt.name)
		if !ok {
			t.Fatalf("%s missing", tt.name)
		}
		if tg.Format != tt.format || tg.DistTag != tt.distTag || tg.Glibc != tt.glibc || tg.Family != tt.family || (tg.Bootstrap.Tool != "") != tt.bootstrap {
			t.Errorf("%s = %+v", tt.name, tg)
		}
		if bad := tg.Validate(); len(bad) > 0 {
			t.Errorf("%s does not validate: %v", tt.name, bad)
		}
		if tg.Image == "" || len(tg.Toolchain) == 0 || !slices.Contains(tg.Allow, "libc.so.6") {
			t.Errorf("%s lacks an image, a toolchain or libc in its allowlist", tt.name)
		}
	}
}

func TestBuiltinReturnsACopy(t *testing.T) {
	a, _ := Builtin("debian-12")
	a.Allow[0] = "changed"
	a.Toolchain = append(a.Toolchain, "x")
	b, _ := Builtin("debian-12")
	if b.Allow[0] == "changed" || slices.Contains(b.Toolchain, "x") {
		t.Fatal("changing a returned target changed the catalogue")
	}
}

func TestMerge(t *testing.T) {
	base, _ := Builtin("debian-12")
	m := Merge(base, Target{Name: "deb12-local", BasedOn: "debian-12", Bootstrap: Bootstrap{Mirror: "http://mirror.local/debian"}, Allow: []string{"libc.so.6"}})
	if m.Name != "deb12-local" || m.Bootstrap.Mirror != "http://mirror.local/debian" || m.Bootstrap.Suite != "bookworm" {
		t.Errorf("merged bootstrap = %+v", m.Bootstrap)
	}
	if !slices.Equal(m.Allow, []string{"libc.so.6"}) || !slices.Equal(m.Toolchain, base.Toolchain) || m.DistTag != "deb12" {
		t.Errorf("merged = %+v", m)
	}
}

func TestSystemLibDirs(t *testing.T) {
	d12, _ := Builtin("debian-12")
	if got := d12.SystemLibDirs("arm64"); got[0] != "/lib/aarch64-linux-gnu" || got[1] != "/usr/lib/aarch64-linux-gnu" {
		t.Errorf("arm64 dirs = %v", got)
	}
	el9, _ := Builtin("el9")
	if got := el9.SystemLibDirs("amd64"); !slices.Equal(got, []string{"/lib64", "/usr/lib64"}) {
		t.Errorf("el9 dirs = %v", got)
	}
}

func TestValidate(t *testing.T) {
	bad := Target{Format: "tgz", Compression: "lz4", Bootstrap: Bootstrap{Tool: "debootstrap"}, LibDirs: []string{"lib"}}.Validate()
	for _, f := range []string{"format", "dist_tag", "compression", "bootstrap.tool", "bootstrap", "lib_dirs"} {
		if bad[f] == "" {
			t.Errorf("no problem reported for %s", f)
		}
	}
}

// TestPackageArch: each format's names, for the arches coach builds and
// the others Debian and rpm name differently.
func TestPackageArch(t *testing.T) {
	for _, c := range []struct{ format, goarch, want string }{
		{FormatDeb, "amd64", "amd64"}, {FormatDeb, "arm64", "arm64"}, {FormatDeb, "386", "i386"},
		{FormatDeb, "arm", "armhf"}, {FormatDeb, "ppc64le", "ppc64el"}, {FormatDeb, "s390x", "s390x"},
		{FormatRPM, "amd64", "x86_64"}, {FormatRPM, "arm64", "aarch64"}, {FormatRPM, "386", "i386"}, {FormatRPM, "ppc64le", "ppc64le"},
	} {
		if got := PackageArch(c.format, c.goarch); got != c.want {
			t.Errorf("PackageArch(%s, %s) = %s, want %s", c.format, c.goarch, got, c.want)
		}
	}
}
