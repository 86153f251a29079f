package version_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/version"
)

// describeCases: what git describe says, the version coach makes of it,
// and versions it must sort after and before.
var describeCases = []struct {
	describe, want, after, before string
}{
	{"v1.4.0-0-g3a4b5c6d7e8f", "1.4.0", "1.4.0-rc.1", "1.4.1"},
	{"1.4.0-0-g3a4b5c6d7e8f", "1.4.0", "1.3.9", "1.4.1-dev.1+gabc"},
	{"v1.4.0-5-g3a4b5c6d7e8f", "1.4.1-dev.5+g3a4b5c6d7e8f", "1.4.0", "1.4.1"},
	{"v1.4.0-1-gaaaaaaaaaaaa", "1.4.1-dev.1+gaaaaaaaaaaaa", "1.4.0", "1.4.1-dev.2+gbbbbbbbbbbbb"},
	{"v1.4.0-10-gaaaaaaaaaaaa", "1.4.1-dev.10+gaaaaaaaaaaaa", "1.4.1-dev.9+gbbbbbbbbbbbb", "1.4.1"},
	{"v1.4.0-100-gaaaaaaaaaaaa", "1.4.1-dev.100+gaaaaaaaaaaaa", "1.4.1-dev.99+gbbbbbbbbbbbb", "1.4.1-rc.1"},
	{"v1.4.9-3-g0123456789ab", "1.4.10-dev.3+g0123456789ab", "1.4.9", "1.4.10"},
	{"v1.9.0-2-g0123456789ab", "1.9.1-dev.2+g0123456789ab", "1.9.0", "1.10.0"},
	{"v2.0.0-rc.1-0-g0123456789ab", "2.0.0-rc.1", "2.0.0-beta.2", "2.0.0"},
	{"v2.0.0-rc.1-3-g0123456789ab", "2.0.0-rc.1.dev.3+g0123456789ab", "2.0.0-rc.1", "2.0.0-rc.2"},
	{"v2.0.0-rc.1-3-g0123456789ab", "2.0.0-rc.1.dev.3+g0123456789ab", "1.9.9", "2.0.0"},
	{"v2.0.0-beta.2-7-g0123456789ab", "2.0.0-beta.2.dev.7+g0123456789ab", "2.0.0-beta.2", "2.0.0-rc.1"},
	{"v1.4.0-0-g3a4b5c6d7e8f-dirty", "1.4.0+dirty", "1.3.0", "1.4.1-dev.1+gabc"},
	{"v1.4.0-5-g3a4b5c6d7e8f-dirty", "1.4.1-dev.5+g3a4b5c6d7e8f.dirty", "1.4.1-dev.4+gabc", "1.4.1"},
	{"v0.1.0-0-g3a4b5c6d7e8f", "0.1.0", "0.0.0-dev.50+gabc", "0.1.1"},
	{"v10.20.30-4-g3a4b5c6d7e8f", "10.20.31-dev.4+g3a4b5c6d7e8f", "10.20.30", "10.20.31"},
	{"v1.2.3-12-g3a4b", "1.2.4-dev.12+g3a4b", "1.2.3", "1.2.4-dev.13+g0000"},
}

// compare asks dpkg and rpm to compare pairs of versions: -1, 0 or 1.
func compare(t *testing.T, pairs [][2]string) (deb, rpm []int) {
	t.Helper()
	for _, tool := range []string{"dpkg", "rpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	var lua strings.Builder
	for _, p := range pairs {
		d1, r1 := pkg.Versions(p[0])
		d2, r2 := pkg.Versions(p[1])
		// The iteration and dist tag, as packages have them.
		d1, d2 = d1+"-1+deb12", d2+"-1+deb12"
		c := 0
		for _, op := range []struct {
			op string
			v  int
		}{{"lt", -1}, {"eq", 0}, {"gt", 1}} {
			if exec.Command("dpkg", "--compare-versions", d1, op.op, d2).Run() == nil {
				c = op.v
			}
		}
		deb = append(deb, c)
		fmt.Fprintf(&lua, "print(rpm.vercmp(%q, %q) .. \" \")\n", r1, r2)
	}
	out, err := exec.Command("rpm", "--eval", "%{lua:\n"+lua.String()+"}").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm vercmp: %v\n%s", err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		var n int
		fmt.Sscan(f, &n)
		rpm = append(rpm, n)
	}
	if len(rpm) != len(pairs) {
		t.Fatalf("rpm printed %q", out)
	}
	return deb, rpm
}

// TestDescribe maps git describe outputs to versions, and checks with
// dpkg's and rpm's own comparisons that each sorts where it must.
func TestDescribe(t *testing.T) {
	var pairs [][2]string
	for _, c := range describeCases {
		g, err := version.ParseDescribe(c.describe)
		if err != nil {
			t.Fatal(err)
		}
		got, err := g.Semver()
		if err != nil {
			t.Fatalf("%s: %v", c.describe, err)
		}
		if got != c.want {
			t.Errorf("%s -> %s, want %s", c.describe, got, c.want)
		}
		pairs = append(pairs, [2]string{c.after, got}, [2]string{got, c.before})
	}
	deb, rpm := compare(t, pairs)
	for i, p := range pairs {
		d, r := pkg.Versions(p[0])
		d2, r2 := pkg.Versions(p[1])
		if deb[i] != -1 {
			t.Errorf("dpkg: %s is not before %s (%d)", d, d2, deb[i])
		}
		if rpm[i] != -1 {
			t.Errorf("rpm: %s is not before %s (%d)", r, r2, rpm[i])
		}
	}
	t.Logf("%d cases, %d orderings checked with dpkg --compare-versions and rpm.vercmp", len(describeCases), len(pairs))
}

func TestParseDescribeRefusesOtherOutput(t *testing.T) {
	for _, out := range []string{"", "v1.0.0", "3a4b5c6", "v1.0.0-x-gabc"} {
		if _, err := version.ParseDescribe(out); err == nil {
			t.Errorf("%q parsed", out)
		}
	}
	if _, err := (version.Git{Tag: "release-2024", Distance: 1, Commit: "abc"}).Semver(); err == nil {
		t.Error("a tag that is not semver gave a version")
	}
}

// TestResolveInARepository runs git for real: no tag, a tag, commits
// after it, a dirty tree, and a template.
func TestResolveInARepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	commit := func(msg string) {
		os.WriteFile(filepath.Join(dir, "f"), []byte(msg), 0o644)
		git("add", "f")
		git("commit", "-q", "-m", msg)
	}
	resolve := func(setting string) string {
		t.Helper()
		v, err := version.Resolve(setting, dir, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	git("init", "-q")
	commit("one")
	commit("two")
	if got := resolve("git"); !strings.HasPrefix(got, "0.0.0-dev.2+g") {
		t.Errorf("no tag: %s", got)
	}
	git("tag", "v1.4.0")
	git("tag", "not-a-version")
	if got := resolve("git"); got != "1.4.0" {
		t.Errorf("at the tag: %s", got)
	}
	commit("three")
	commit("four")
	if got := resolve("git"); !strings.HasPrefix(got, "1.4.1-dev.2+g") {
		t.Errorf("two after: %s", got)
	}
	os.WriteFile(filepath.Join(dir, "f"), []byte("changed"), 0o644)
	if got := resolve("git"); !strings.HasSuffix(got, ".dirty") {
		t.Errorf("dirty: %s", got)
	}
	if got := resolve("1.4.0-nightly.{{.Date}}+g{{.Git.Commit}}"); !strings.HasPrefix(got, "1.4.0-nightly.20261202+g") {
		t.Errorf("template: %s", got)
	}
	if _, err := version.Resolve("{{.Git.Tag}}-{{", dir, time.Now()); err == nil {
		t.Error("a broken template resolved")
	}
	if _, err := version.Resolve("nightly-{{.Date}}", dir, time.Now()); err == nil || !strings.Contains(err.Error(), "not semver") {
		t.Errorf("a template giving no semver: %v", err)
	}
}
