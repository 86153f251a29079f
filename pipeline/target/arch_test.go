package target

import (
	"debug/elf"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestArchTable checks that every name in the table finds its own row,
// no name is given to two architectures, and each row's ELF machine is
// its own.
func TestArchTable(t *testing.T) {
	names := map[string]string{}
	for _, a := range archTable {
		for _, n := range []string{a.Go, a.Deb, a.RPM, a.Qemu} {
			if got, ok := ArchOf(n); !ok || got.Go != a.Go {
				t.Errorf("ArchOf(%q) = %q, %v; want %s", n, got.Go, ok, a.Go)
			}
			if other, ok := names[n]; ok && other != a.Go {
				t.Errorf("%q names both %s and %s", n, other, a.Go)
			}
			names[n] = a.Go
		}
		if got, ok := ArchOfMachine(a.Machine); !ok || got.Go != a.Go {
			t.Errorf("ArchOfMachine(%v) = %q", a.Machine, got.Go)
		}
		if a.Interp == "" || a.Multiarch == "" || a.Binutils == "" || a.Class == elf.ELFCLASSNONE {
			t.Errorf("%s: a name is missing: %+v", a.Go, a)
		}
	}
	if got := PackageArch(FormatRPM, "arm64"); got != "aarch64" {
		t.Errorf("rpm's arm64 is %q", got)
	}
	if got := PackageArch(FormatDeb, "386"); got != "i386" {
		t.Errorf("Debian's 386 is %q", got)
	}
	if _, ok := ArchOf("sparc"); ok {
		t.Error("an unknown name was found")
	}
}

// TestArchTableMatchesHost checks the host's row against the host's own
// tools: dpkg's architecture and multiarch triplet, and the machine,
// class and loader of a program of the host.
func TestArchTableMatchesHost(t *testing.T) {
	a := LookupArch(HostArch())
	if !a.Builds {
		t.Skipf("coach does not build for this host's architecture (%s)", HostArch())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dpkg", "--print-architecture"}, a.Deb},
		{[]string{"dpkg-architecture", "-qDEB_HOST_MULTIARCH"}, a.Multiarch},
		{[]string{"rpm", "--eval", "%{_arch}"}, a.RPM},
	} {
		if _, err := exec.LookPath(c.args[0]); err != nil {
			t.Logf("%s is not installed: not compared", c.args[0])
			continue
		}
		out, err := exec.Command(c.args[0], c.args[1:]...).Output()
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("%v says %q, the table %q", c.args, got, c.want)
		}
	}
	f, err := elf.Open("/bin/sh")
	if err != nil {
		t.Skipf("no /bin/sh to read: %v", err)
	}
	defer f.Close()
	if f.Machine != a.Machine || f.Class != a.Class {
		t.Errorf("/bin/sh is %v %v, the table says %v %v", f.Machine, f.Class, a.Machine, a.Class)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			p.ReadAt(b, 0)
			if got := strings.TrimRight(string(b), "\x00"); got != a.Interp {
				t.Errorf("/bin/sh's loader is %s, the table says %s", got, a.Interp)
			}
		}
	}
	if _, err := os.Stat(a.Interp); err != nil {
		t.Errorf("the host's loader: %v", err)
	}
}
