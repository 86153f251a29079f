package pkg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

func TestOwnersModesAndExtraFiles(t *testing.T) {
	need(t, "dpkg-deb", "rpm", "strip")
	root, tree, p := fixture(t)
	p.Package.Owner = "app"
	p.Package.Files = []spec.FileAttrs{{Path: "etc/**", Group: "adm", Mode: "0640"}, {Path: "bin/*", Owner: "root", Group: "root"}}
	os.MkdirAll(filepath.Join(root, "files"), 0o755)
	os.WriteFile(filepath.Join(root, "files/app.service"), []byte("[Service]\n"), 0o600)
	p.Package.ExtraFiles = []spec.ExtraFile{{Source: "files/app.service", Destination: "/lib/systemd/system/app.service"}}
	// A build cannot make its files setuid: only package.files can.
	os.Chmod(filepath.Join(tree, "share/tool.sh"), 0o4755)
	for _, name := range []string{"debian-12", "el9"} {
		tg, _ := target.Builtin(name)
		a, err := Package(Options{Project: p, Root: root, Target: tg, Arch: "amd64", Tree: tree, MTime: epoch, OutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var listing, pre string
		if tg.Format == target.FormatDeb {
			listing = run(t, "dpkg-deb", "-c", a.Path)
			ctrl := t.TempDir()
			run(t, "dpkg-deb", "-e", a.Path, ctrl)
			pre = string(must(os.ReadFile(filepath.Join(ctrl, "preinst"))))
		} else {
			listing = run(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]", a.Path)
			pre = run(t, "rpm", "-qp", "--qf", "%{PREIN}", a.Path)
		}
		lines := map[string]string{}
		for _, l := range strings.Split(listing, "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 {
				n := strings.TrimSuffix(strings.TrimPrefix(f[len(f)-1], "."), "/")
				if tg.Format == target.FormatDeb {
					n = strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
				}
				lines[n] = f[0] + " " + f[1]
			}
		}
		for path, want := range map[string]string{
			"/opt/app":                        "drwxr-xr-x app/app",
			"/opt/app/etc/app.conf":           "-rw-r----- app/adm",
			"/opt/app/bin/app":                "-rwxr-xr-x root/root",
			"/opt/app/share/tool.sh":          "-rwxr-xr-x app/app",
			"/lib/systemd/system/app.service": "-rw-r--r-- root/root",
			"/usr/share/doc/app/copyright":    "-rw-r--r-- root/root",
		} {
			if lines[path] != want {
				t.Errorf("%s: %s is %q, want %q", name, path, lines[path], want)
			}
		}
		for _, w := range []string{"app", "adm"} {
			if !strings.Contains(pre, w) {
				t.Errorf("%s: the preinst does not create %s:\n%s", name, w, pre)
			}
		}
		if !strings.Contains(pre, "echo preinst") && tg.Format == target.FormatDeb && p.Hooks["preinst"] != "" {
			t.Errorf("%s: the project's preinst is gone:\n%s", name, pre)
		}
	}
}

// TestExtraFilesStayInTheRepository refuses an extra file that is a
// symlink out of the repository: coach reads it through a root confined
// to the repository.
func TestExtraFilesStayInTheRepository(t *testing.T) {
	need(t, "strip")
	root, tree, p := fixture(t)
	os.MkdirAll(filepath.Join(root, "files"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(root, "files/passwd"))
	p.Package.ExtraFiles = []spec.ExtraFile{{Source: "files/passwd", Destination: "/etc/app/passwd"}}
	tg, _ := target.Builtin("debian-12")
	_, err := Package(Options{Project: p, Root: root, Target: tg, Arch: "amd64", Tree: tree, MTime: epoch, OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "files/passwd") {
		t.Fatalf("a symlink out of the repository was packaged: %v", err)
	}
}

func TestAccountScript(t *testing.T) {
	p := &spec.Project{Name: "app", Package: spec.Package{Owner: "svc", Files: []spec.FileAttrs{{Path: "var/**", Owner: "worker", Group: "data"}}}}
	deb, rpm := accountScript(p, target.FormatDeb), accountScript(p, target.FormatRPM)
	for _, w := range []string{"getent group svc >/dev/null || addgroup --system --quiet svc", "getent group data >/dev/null || addgroup --system --quiet data",
		"getent passwd svc >/dev/null || adduser --system --quiet --ingroup svc", "getent passwd worker >/dev/null || adduser --system --quiet --ingroup data"} {
		if !strings.Contains(deb, w) {
			t.Errorf("deb script lacks %q:\n%s", w, deb)
		}
	}
	for _, w := range []string{"getent group svc >/dev/null || groupadd -r svc", "getent passwd worker >/dev/null || useradd -r -g data"} {
		if !strings.Contains(rpm, w) {
			t.Errorf("rpm script lacks %q:\n%s", w, rpm)
		}
	}
	if s := accountScript(&spec.Project{Name: "app"}, target.FormatDeb); s != "" {
		t.Errorf("a root-owned package creates accounts:\n%s", s)
	}
}
