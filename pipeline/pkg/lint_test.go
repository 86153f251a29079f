package pkg

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Error tags that remain on an omnibus package, and why each is acceptable.
var acceptedErrors = map[string]string{
	// lintian
	"dir-or-file-in-opt":              "everything lives under /opt/<project>: the omnibus layout, by design (FHS add-on software)",
	"custom-library-search-path":      "binaries find the embedded libraries through their RUNPATH: how the omnibus layout links",
	"non-etc-file-marked-as-conffile": "the project's config file lives in its install dir; it is a conffile so upgrades keep local edits",
	"malformed-deb-archive":           "lintian 2.116 predates zstd members; dpkg 1.21.18+ (bookworm, trixie) reads data.tar.zst",
	// rpmlint
	"postin-without-ldconfig":               "the libraries are found through RUNPATH, not the ld.so cache; ldconfig would do nothing",
	"postun-without-ldconfig":               "as above",
	"library-without-ldconfig-postun":       "as above",
	"no-signature":                          "signing is opt-in (coach build --sign-key)",
	"missing-hash-section":                  "Debian's and Fedora's toolchains link with --hash-style=gnu: .gnu.hash, which glibc's loader reads, and no SysV .hash",
	"non-versioned-file-in-library-package": "an omnibus package is an application carrying its libraries privately under /opt/<project>/embedded; no second major version is ever installed beside it",
}

// lintian writes "E: pkg: tag ..."; rpmlint "pkg.arch: E: tag ...".
var tagLine = regexp.MustCompile(`^(?:([EW]): \S+: (\S+)|\S+: ([EW]): (\S+))`)

// lintTags runs a linter and counts its tags by severity.
func lintTags(t *testing.T, cmd *exec.Cmd) map[string]int {
	t.Helper()
	out, _ := cmd.CombinedOutput() // linters exit non-zero when they find anything
	tags := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := tagLine.FindStringSubmatch(line); m != nil {
			sev, tag := m[1]+m[3], m[2]+m[4]
			tags[sev+": "+tag]++
		}
	}
	if len(tags) == 0 && !strings.Contains(string(out), "0 errors") && !strings.Contains(string(out), "packages and 0 specfiles checked") {
		t.Logf("%s printed:\n%s", cmd.Path, out)
	}
	return tags
}

func checkTags(t *testing.T, linter string, tags map[string]int) {
	t.Helper()
	var names []string
	for k := range tags {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		sev, tag, _ := strings.Cut(k, ": ")
		reason, ok := acceptedErrors[tag]
		switch {
		case sev == "E" && !ok:
			t.Errorf("%s: unexpected error tag %s (x%d)", linter, tag, tags[k])
		case sev == "E":
			t.Logf("%s: E %s x%d: %s", linter, tag, tags[k], reason)
		default:
			t.Logf("%s: W %s x%d", linter, tag, tags[k])
		}
	}
}

func TestLint(t *testing.T) {
	need(t, "lintian", "rpmlint", "bwrap", "strip")
	root, tree, p := fixture(t)
	// The fixture's 0750 script tests mode preservation; a real package
	// has world-readable files.
	os.Chmod(filepath.Join(tree, "share/tool.sh"), 0o755)
	p.Package.Links = map[string]string{"/usr/bin/app": "/opt/app/bin/app"}
	rel := release(t, root, tree, p, t.TempDir(), "debian-12", "el9")
	checkTags(t, "lintian", lintTags(t, exec.Command("lintian", "--tag-display-limit", "0", rel.Artifacts[0].Path)))
	// rpmlint unpacks the payload with cpio. coach's payload names are
	// relative, but a regression to absolute ones (nfpm's, see
	// goreleaser/nfpm#1122) must not write into this machine's /opt: run
	// it where / is read-only and /opt is scratch.
	checkTags(t, "rpmlint", lintTags(t, exec.Command("bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
		"--tmpfs", "/tmp", "--tmpfs", "/opt", "--tmpfs", "/usr/share/doc", "--ro-bind", rel.Artifacts[1].Path, "/tmp/app.rpm",
		"--setenv", "HOME", "/tmp", "rpmlint", "/tmp/app.rpm")))
}
