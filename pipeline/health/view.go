package health

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// view maps the paths a program sees at run time to files on this host:
// the install dir to the built tree, everything else to the target's root
// filesystem (sysroot). Symlinks are followed inside the view, so an
// absolute link in the target root never escapes to the host's files.
type view struct {
	installDir string // runtime path, e.g. /opt/hello
	tree       string // host dir holding the install dir's contents
	sysroot    string // host dir of the target root; "" when there is none
	// excluded, when set, says which paths (relative to the install dir)
	// the package leaves out: they do not exist at run time.
	excluded func(rel string) bool
}

// errExcluded is a path the package leaves out.
var errExcluded = fmt.Errorf("left out of the package: %w", fs.ErrNotExist)

// host returns the host path of runtime path p (without following links).
func (v *view) host(p string) (string, bool) {
	if within(p, v.installDir) {
		return filepath.Join(v.tree, strings.TrimPrefix(p, v.installDir)), true
	}
	if v.sysroot == "" {
		return "", false
	}
	return filepath.Join(v.sysroot, p), true
}

func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// realpath resolves runtime path p, following symlinks inside the view,
// and returns the final runtime path and its host path.
func (v *view) realpath(p string) (string, string, error) {
	p = path.Clean(p)
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		cur := "/"
		restart := false
		for i, part := range parts {
			if part == "" {
				continue
			}
			next := path.Join(cur, part)
			if next != v.installDir && within(v.installDir, next) {
				// An ancestor of the install dir (/opt for /opt/hello):
				// a plain directory wherever the package is installed.
				cur = next
				continue
			}
			if v.excluded != nil && next != v.installDir && within(next, v.installDir) && v.excluded(strings.TrimPrefix(next, strings.TrimSuffix(v.installDir, "/")+"/")) {
				return "", "", errExcluded
			}
			h, ok := v.host(next)
			if !ok {
				return "", "", fs.ErrNotExist
			}
			st, err := os.Lstat(h)
			if err != nil {
				return "", "", err
			}
			if st.Mode()&fs.ModeSymlink != 0 {
				link, err := os.Readlink(h)
				if err != nil {
					return "", "", err
				}
				if !path.IsAbs(link) {
					link = path.Join(cur, link)
				}
				p = path.Join(append([]string{link}, parts[i+1:]...)...)
				restart = true
				break
			}
			cur = next
		}
		if !restart {
			h, _ := v.host(cur)
			return cur, h, nil
		}
	}
	return "", "", errors.New("too many levels of symbolic links")
}

// ldSoConf reads the target's /etc/ld.so.conf and its includes, in order.
func (v *view) ldSoConf() []string {
	var dirs []string
	seen := map[string]bool{}
	var read func(p string, depth int)
	read = func(p string, depth int) {
		if depth > 8 || seen[p] {
			return
		}
		seen[p] = true
		_, h, err := v.realpath(p)
		if err != nil {
			return
		}
		f, err := os.Open(h)
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			switch {
			case line == "":
			case strings.HasPrefix(line, "include "):
				for _, pat := range strings.Fields(strings.TrimPrefix(line, "include ")) {
					if !path.IsAbs(pat) {
						pat = path.Join(path.Dir(p), pat)
					}
					hostPat, ok := v.host(pat)
					if !ok {
						continue
					}
					matches, _ := filepath.Glob(hostPat)
					for _, m := range matches {
						rel, _ := filepath.Rel(v.sysroot, m)
						read("/"+filepath.ToSlash(rel), depth+1)
					}
				}
			case strings.HasPrefix(line, "hwcap "):
			default:
				for _, d := range strings.FieldsFunc(line, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == '\t' }) {
					if path.IsAbs(d) {
						dirs = append(dirs, path.Clean(d))
					}
				}
			}
		}
	}
	read("/etc/ld.so.conf", 0)
	return dirs
}
