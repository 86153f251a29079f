package pkg

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/coach-build/coach/pipeline/target"
)

// writeBoth writes the fixture's package for a target with coach's
// streaming writer and with nfpm's packager, from the same Info. The
// fixture gets a 3 MiB random file, so the payload spans several
// compressor blocks and async chunks, and an odd-sized one, so ar members need padding.
func writeBoth(t *testing.T, name, compression string) (ours, theirs, tree string) {
	t.Helper()
	root, tree, p := fixture(t)
	big := make([]byte, 3<<20+1)
	rand.Read(big)
	os.WriteFile(filepath.Join(tree, "share/big.bin"), big, 0o644)
	tg, _ := target.Builtin(name)
	tg.Compression = compression
	dir := t.TempDir()
	write := func(file string, pack func(*nfpm.Info, string, *os.File) error) string {
		opts := Options{Project: p, Root: root, Target: tg, Arch: "amd64", Tree: tree, MTime: epoch, WorkDir: t.TempDir(),
			Depends: []string{"libc6 (>= 2.34)"}}
		if tg.Format == target.FormatRPM {
			opts.Depends = []string{"libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)"}
		}
		info, _, err := Info(opts)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pack(info, opts.WorkDir, f); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return f.Name()
	}
	if tg.Format == target.FormatDeb {
		ours = write("ours.deb", func(i *nfpm.Info, w string, f *os.File) error { return writeDeb(i, w, nil, f) })
		theirs = write("nfpm.deb", func(i *nfpm.Info, _ string, f *os.File) error { return deb.Default.Package(i, f) })
	} else {
		ours = write("ours.rpm", func(i *nfpm.Info, w string, f *os.File) error { return writeRPM(i, w, nil, f) })
		theirs = write("nfpm.rpm", func(i *nfpm.Info, _ string, f *os.File) error { return rpm.DefaultRPM.Package(i, f) })
	}
	return ours, theirs, tree
}

func sameOutput(t *testing.T, what, ours, theirs string) {
	t.Helper()
	if ours != theirs {
		t.Errorf("%s differs from nfpm's:\n--- coach\n%s--- nfpm\n%s", what, ours, theirs)
	}
}

// TestDebWriterMatchesNfpm checks coach's deb writer against nfpm's: the
// same control fields (bar Installed-Size, which coach counts as
// dpkg-gencontrol does), the same listing with owners and modes, the
// same md5sums, conffiles and scripts, and byte-identical files once
// dpkg-deb extracts both.
func TestDebWriterMatchesNfpm(t *testing.T) {
	need(t, "dpkg-deb", "strip", "ar")
	for _, comp := range []string{"zstd", "gzip", "xz", "none"} {
		t.Run(comp, func(t *testing.T) {
			ours, theirs, _ := writeBoth(t, "debian-12", comp)
			// nfpm copies a hard link's content; coach keeps the link.
			ourList, theirList := run(t, "dpkg-deb", "-c", ours), run(t, "dpkg-deb", "-c", theirs)
			// Installed-Size is dpkg-gencontrol's count of what dpkg
			// lists (nfpm's is the bytes over 1024, and is not compared).
			if got, want := run(t, "dpkg-deb", "-f", ours, "Installed-Size"), fmt.Sprintln(installedKiB(t, ourList)); got != want {
				t.Errorf("Installed-Size: %s, dpkg-gencontrol would write %s", strings.TrimSpace(got), want)
			}
			fields := func(f string) string {
				return regexp.MustCompile(`(?m)^Installed-Size: \d+\n`).ReplaceAllString(run(t, "dpkg-deb", "-f", f), "")
			}
			sameOutput(t, "control", fields(ours), fields(theirs))
			if !strings.Contains(ourList, "./opt/app/bin/app-hardlink link to ./opt/app/bin/app\n") {
				t.Errorf("the hard link is not a link:\n%s", ourList)
			}
			sameOutput(t, "listing", withoutLine(ourList, "/bin/app-hardlink"), withoutLine(theirList, "/bin/app-hardlink"))
			a, b := t.TempDir(), t.TempDir()
			run(t, "dpkg-deb", "-e", ours, a)
			run(t, "dpkg-deb", "-e", theirs, b)
			for _, f := range []string{"md5sums", "conffiles", "postinst", "prerm"} {
				x, _ := os.ReadFile(filepath.Join(a, f))
				y, _ := os.ReadFile(filepath.Join(b, f))
				if len(x) == 0 || !bytes.Equal(x, y) {
					t.Errorf("%s: coach wrote %d bytes, nfpm %d, and they differ", f, len(x), len(y))
				}
			}
			x, y := t.TempDir(), t.TempDir()
			run(t, "dpkg-deb", "-x", ours, x)
			run(t, "dpkg-deb", "-x", theirs, y)
			if out, err := exec.Command("diff", "-r", "--no-dereference", "--", x, y).CombinedOutput(); err != nil {
				t.Errorf("the extracted trees differ: %v\n%s", err, out)
			}
			// The member order and names dpkg expects.
			if got := run(t, "ar", "t", ours); !strings.HasPrefix(got, "debian-binary\ncontrol.tar.gz\ndata.tar") {
				t.Errorf("members:\n%s", got)
			}
		})
	}
}

// TestRPMWriterMatchesNfpm checks coach's rpm writer against nfpm's
// (rpmpack): every header field rpm shows, every file's name, mode,
// owner, size, digest, flags and link target, the scripts and the
// relations, then rpm's own digest check and an unpacked payload with
// relative member names whose files match the tree.
func TestRPMWriterMatchesNfpm(t *testing.T) {
	need(t, "rpm", "rpm2cpio", "cpio", "strip")
	for _, comp := range []string{"zstd", "gzip", "xz"} {
		t.Run(comp, func(t *testing.T) {
			ours, theirs, tree := writeBoth(t, "el9", comp)
			q := func(f, format string) string { return run(t, "rpm", "-qp", "--qf", format, f) }
			for _, format := range []string{
				"%{NAME} %{EPOCH} %{VERSION} %{RELEASE} %{ARCH} %{OS} %{LICENSE} %{GROUP} %{VENDOR} %{URL} %{PACKAGER} %{SUMMARY} %{BUILDHOST} %{BUILDTIME} %{SOURCERPM} %{PAYLOADFORMAT} %{PAYLOADCOMPRESSOR}\n%{DESCRIPTION}\n",
				"[%{FILENAMES} %{FILEMODES:octal} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILESIZES} %{FILEDIGESTS} %{FILEFLAGS:fflags} %{FILELINKTOS} %{FILEMTIMES}\n]",
				"[%{CHANGELOGTIME} %{CHANGELOGNAME}\n]",
				"%{PREIN}|%{POSTIN}|%{PREUN}|%{POSTUN}|%{PRETRANS}|%{POSTTRANS}\n",
				"[%{PROVIDENAME} %{PROVIDEFLAGS:depflags} %{PROVIDEVERSION}\n]",
				"[%{CONFLICTNAME} %{CONFLICTFLAGS:depflags} %{CONFLICTVERSION}\n][%{OBSOLETENAME} %{OBSOLETEFLAGS:depflags} %{OBSOLETEVERSION}\n]",
			} {
				// rpmbuild gives symlinks mode 0120777; rpmpack leaves
				// the permission bits out.
				mine := strings.ReplaceAll(q(ours, format), " 120777 ", " 120000 ")
				sameOutput(t, format, sortLines(mine), sortLines(q(theirs, format)))
			}
			// rpmpack leaves out the rpmlib() requirements rpmbuild writes.
			var requires []string
			for _, l := range strings.Split(strings.TrimSpace(run(t, "rpm", "-qp", "--requires", ours)), "\n") {
				if !strings.HasPrefix(l, "rpmlib(") {
					requires = append(requires, l)
				}
			}
			sameOutput(t, "requires", strings.Join(requires, "\n")+"\n", run(t, "rpm", "-qp", "--requires", theirs))
			if got := run(t, "rpm", "-K", ours); !strings.Contains(got, "digests OK") {
				t.Errorf("rpm -K: %s", got)
			}
			dir := t.TempDir()
			cmd := exec.Command("sh", "-c", `rpm2cpio "$1" | cpio -idm --quiet && rpm2cpio "$1" | cpio -t --quiet`, "sh", ours)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("unpacking: %v\n%s", err, out)
			}
			for _, name := range strings.Fields(string(out)) {
				if !strings.HasPrefix(name, "./") {
					t.Errorf("payload member %q is not relative", name)
				}
			}
			for _, f := range []string{"share/big.bin", "etc/app.conf", "share/tool.sh"} {
				if !bytes.Equal(must(os.ReadFile(filepath.Join(dir, "opt/app", f))), must(os.ReadFile(filepath.Join(tree, f)))) {
					t.Errorf("%s unpacks with other content than the tree's", f)
				}
			}
		})
	}
}

func sortLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestNamesWithGlobCharacters packages files whose names a build chose
// with glob metacharacters in them: they are paths, never patterns.
func TestNamesWithGlobCharacters(t *testing.T) {
	need(t, "dpkg-deb", "rpm", "strip")
	_, tree, p := fixture(t)
	p.Hooks = nil
	os.WriteFile(filepath.Join(tree, "share/lib[1]*.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(tree, "share/lib1-other.txt"), []byte("y"), 0o644)
	for _, name := range []string{"debian-12", "el9"} {
		tg, _ := target.Builtin(name)
		a, err := Package(Options{Project: p, Target: tg, Arch: "amd64", Tree: tree, MTime: epoch, OutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var list string
		if tg.Format == target.FormatDeb {
			list = run(t, "dpkg-deb", "-c", a.Path)
		} else {
			list = run(t, "rpm", "-qlp", a.Path)
		}
		if strings.Count(list, "/opt/app/share/lib[1]*.txt") != 1 || strings.Count(list, "/opt/app/share/lib1-other.txt") != 1 {
			t.Errorf("%s lists:\n%s", name, list)
		}
	}
}

// withoutLine drops the lines that contain s.
func withoutLine(text, s string) string {
	var keep []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.Contains(l, s) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// installedKiB counts a package's installed size from dpkg-deb -c as
// dpkg-gencontrol does: a regular file's size rounded up to a KiB, once
// per inode (a hard link adds nothing), and one KiB for any other entry.
func installedKiB(t *testing.T, listing string) int64 {
	var kib int64
	for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", l)
		}
		switch {
		case strings.Contains(l, " link to "):
		case f[0][0] == '-':
			size, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("dpkg-deb -c line %q: %v", l, err)
			}
			kib += (size + 1023) / 1024
		default:
			kib++
		}
	}
	return kib
}
