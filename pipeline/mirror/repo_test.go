package mirror

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoArchiveHostInRepository keeps the host names of package archives out
// of the repository: definitions, locks, targets and tests name an archive
// (mirror://debian), and the host comes from the machine. The hosts checked
// are those of this machine's apt sources and $COACH_MIRROR_* variables.
func TestNoArchiveHostInRepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the test lists the repository's files with git ls-files")
	}
	root, _ := filepath.Abs("../..")
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to list", err)
	}
	hosts := map[string]bool{}
	for _, base := range AptArchives("/etc/apt") {
		if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
			hosts[u.Hostname()] = true
		}
	}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "COACH_MIRROR_") {
			if u, err := url.Parse(v); err == nil && u.Hostname() != "" {
				hosts[u.Hostname()] = true
			}
		}
	}
	if len(hosts) == 0 {
		t.Skip("this machine configures no package archive, so there is no host name to look for")
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		for h := range hosts {
			if bytes.Contains(data, []byte(h)) {
				t.Errorf("%s names the package archive host %s: write {{mirror \"<name>\"}} or mirror://<name>, and take the host from the machine", f, h)
			}
		}
	}
	t.Logf("%d files checked for %d archive hosts", len(files), len(hosts))
}
