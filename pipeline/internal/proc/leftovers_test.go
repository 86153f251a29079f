package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// TestLeftovers: only entries named after a process that is gone are
// leftovers; this process's, a live one's and names that do not match
// are not.
func TestLeftovers(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1) to make a process that is gone")
	}
	dead := strconv.Itoa(cmd.Process.Pid)
	self := strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	for _, name := range []string{"tmp-" + dead + "-a", "tmp-" + self + "-b", "tmp-1-c", "other-" + dead + "-d", "tmp-x-e"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	var got []string
	for _, e := range Leftovers(dir, regexp.MustCompile(`^tmp-([0-9]+)-`)) {
		got = append(got, e.Name())
	}
	if want := []string{"tmp-" + dead + "-a"}; !slices.Equal(got, want) {
		t.Errorf("Leftovers = %v, want %v (pid 1 and this process are alive)", got, want)
	}
}
