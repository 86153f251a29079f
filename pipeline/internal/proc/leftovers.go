package proc

import (
	"os"
	"regexp"
	"strconv"
)

// Leftovers are the entries of dir that a process which no longer runs
// left behind: those whose name matches name, with the process id as its
// first submatch, other than this process. Temporary files and
// directories are named so, and one whose process is gone is no one's.
func Leftovers(dir string, name *regexp.Regexp) []os.DirEntry {
	var out []os.DirEntry
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		m := name.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && pid > 0 && pid != os.Getpid() && !Alive(pid) {
			out = append(out, e)
		}
	}
	return out
}
