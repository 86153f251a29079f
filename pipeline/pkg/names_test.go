package pkg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

func TestPathProblem(t *testing.T) {
	long := strings.Repeat("x", maxNameBytes)
	for _, tc := range []struct {
		path, format, want string // want: a word of the reason, "" for none
	}{
		{"/opt/app/bin/app", "deb", ""},
		{"/opt/app/a\nb", "deb", "control character"},
		{"/opt/app/a\nb", "rpm", "control character"},
		{"/opt/app/a\tb", "deb", ""}, // dpkg takes a tab
		{"/opt/app/a\tb", "rpm", "rpmbuild refuses"},
		{"/opt/app/a\rb", "rpm", "rpmbuild refuses"},
		{"/opt/app/a\rb", "deb", ""},
		{"/opt/app/\xff\xfe", "deb", "UTF-8"},
		{"/opt/app/\xff\xfe", "rpm", "UTF-8"},
		{"/opt/app/" + long, "deb", ""},
		{"/opt/app/" + long + "x", "deb", "246"},
		{"/opt/app/" + long + "x/y", "rpm", "246"},
		{"/opt" + strings.Repeat("/"+strings.Repeat("d", 200), 21), "deb", "4086"},
	} {
		got := pathProblem(tc.path, tc.format)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("pathProblem(%.40q, %s) = %q, want %q", tc.path, tc.format, got, tc.want)
		}
	}
}

// TestUninstallablePathsAreRefused packages trees whose one bad path
// dpkg or rpm would refuse: packaging fails naming it, and writes no
// package. The limits are those of the real tools: dpkg installs a
// 246-byte name and refuses a 247-byte one (checked here with dpkg when
// it is installed).
func TestUninstallablePathsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name, file, format string
	}{
		{"newline deb", "bin/a\nb", "debian-12"},
		{"newline rpm", "bin/a\nb", "el9"},
		{"tab rpm", "bin/a\tb", "el9"},
		{"long name", "bin/" + strings.Repeat("n", 247), "debian-12"},
		{"not UTF-8", "bin/\xff", "el9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := t.TempDir()
			os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
			if err := os.WriteFile(filepath.Join(tree, tc.file), []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tg, _ := target.Builtin(tc.format)
			out := t.TempDir()
			p := &spec.Project{Name: "app", Description: "d", Maintainer: "M <m@example.com>", License: "MIT", Version: "1.0.0", Iteration: 1, InstallDir: "/opt/app"}
			_, err := Package(Options{Project: p, Target: tg, Arch: "amd64", Tree: tree, MTime: time.Unix(1.7e9, 0), OutDir: out})
			var pe *PathError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), strings.TrimSuffix(fmt.Sprintf("%.12q", "/opt/app/"+tc.file), `"`)) {
				t.Fatalf("err = %v, want a PathError naming the file", err)
			}
			t.Logf("%v", err)
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a package was written: %v", entries)
			}
		})
	}
}

// TestLongNameLimitIsDpkgs checks maxNameBytes against dpkg itself: a
// package with a 246-byte name installs, one with 247 bytes does not.
func TestLongNameLimitIsDpkgs(t *testing.T) {
	need(t, "dpkg", "dpkg-deb")
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root")
	}
	for _, n := range []int{maxNameBytes, maxNameBytes + 1} {
		dir := t.TempDir()
		pkg := filepath.Join(dir, "pkg")
		os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755)
		os.MkdirAll(filepath.Join(pkg, "opt/n"), 0o755)
		os.WriteFile(filepath.Join(pkg, "DEBIAN/control"), []byte("Package: n\nVersion: 1\nArchitecture: all\nMaintainer: a <a@b>\nDescription: d\n"), 0o644)
		os.WriteFile(filepath.Join(pkg, "opt/n", strings.Repeat("x", n)), nil, 0o644)
		run(t, "dpkg-deb", "-b", pkg, filepath.Join(dir, "n.deb"))
		root := filepath.Join(dir, "root")
		os.MkdirAll(filepath.Join(root, "var/lib/dpkg/info"), 0o755)
		os.MkdirAll(filepath.Join(root, "var/lib/dpkg/updates"), 0o755)
		os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
		err := exec.Command("dpkg", "--root="+root, "--force-all", "-i", filepath.Join(dir, "n.deb")).Run()
		if installs := err == nil; installs != (n <= maxNameBytes) {
			t.Errorf("a %d-byte name: dpkg installs it: %v; coach's limit is %d", n, installs, maxNameBytes)
		}
	}
}

// TestHardLinksStayLinks: two names of one file (and of one stripped
// binary) are one file in the deb and the rpm, which dpkg-deb, tar,
// rpm and cpio all read as links; the gzip deb is no larger than
// dpkg-deb's of the same tree.
func TestHardLinksStayLinks(t *testing.T) {
	need(t, "dpkg-deb", "rpm", "rpm2cpio", "cpio", "strip", "cc")
	root, tree, p := fixture(t)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	os.WriteFile(filepath.Join(tree, "share/data"), big, 0o644)
	os.Link(filepath.Join(tree, "share/data"), filepath.Join(tree, "share/data-2"))
	os.Link(filepath.Join(tree, "share/data"), filepath.Join(tree, "share/data-3"))
	p.Package.Compression = spec.FormatString{Deb: "gzip", RPM: "gzip"}
	rel := release(t, root, tree, p, t.TempDir(), "debian-12", "el9")
	deb, rpmFile := rel.Artifacts[0].Path, rel.Artifacts[1].Path

	list := run(t, "dpkg-deb", "-c", deb)
	for _, l := range []string{"./opt/app/bin/app-hardlink link to ./opt/app/bin/app", "./opt/app/share/data-2 link to ./opt/app/share/data", "./opt/app/share/data-3 link to ./opt/app/share/data"} {
		if !strings.Contains(list, l) {
			t.Errorf("the deb lacks %q:\n%s", l, list)
		}
	}
	x := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, x)
	a, _ := os.Stat(filepath.Join(x, "opt/app/share/data"))
	b, _ := os.Stat(filepath.Join(x, "opt/app/share/data-3"))
	if !os.SameFile(a, b) || a.Size() != int64(len(big)) {
		t.Errorf("dpkg-deb -x: data and data-3 are not one file of %d bytes", len(big))
	}
	sums := run(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xOf - ./md5sums")
	if strings.Count(sums, "opt/app/share/data") != 3 {
		t.Errorf("md5sums lists each name of the linked file: %s", sums)
	}

	// rpm: one inode for the set, the content carried once.
	q := run(t, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEINODES} %{FILESIZES} %{FILENLINKS}\n]", rpmFile)
	inodes := map[string]string{}
	for _, l := range strings.Split(q, "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && strings.Contains(f[0], "/share/data") {
			inodes[f[1]] += f[0] + " "
			if f[2] != "1048576" || f[3] != "3" {
				t.Errorf("rpm header: %s (want size 1048576, 3 links)", l)
			}
		}
	}
	if len(inodes) != 1 {
		t.Errorf("the linked files have inodes %v, want one", inodes)
	}
	if err := exec.Command("rpm", "-K", "--nosignature", rpmFile).Run(); err != nil {
		t.Errorf("rpm -K: %v", err)
	}
	y := t.TempDir()
	run(t, "sh", "-c", "cd "+y+" && rpm2cpio "+rpmFile+" | cpio -idm --quiet")
	c, _ := os.Stat(filepath.Join(y, "opt/app/share/data"))
	d, _ := os.Stat(filepath.Join(y, "opt/app/share/data-2"))
	if c == nil || d == nil || !os.SameFile(c, d) || c.Size() != int64(len(big)) {
		t.Errorf("cpio: data and data-2 are not one file of %d bytes", len(big))
	}
	if rpmSize, debSize := rel.Artifacts[1].Size, rel.Artifacts[0].Size; rpmSize > 3*int64(len(big))/2 || debSize > 3*int64(len(big))/2 {
		t.Errorf("a 1 MiB file linked three times made a %d-byte deb and a %d-byte rpm: its content is in them more than once", debSize, rpmSize)
	}
}
