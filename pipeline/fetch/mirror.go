package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coach-build/coach/pipeline/digest"
)

// Populated is one source laid out in a mirror.
type Populated struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Paths   []string `json:"paths"`
}

// Populate fetches every request and lays it out under dir as a mirror that
// --source-mirror file://<dir> can serve: <dir>/<file name> and
// <dir>/<algo>/<hex> for url sources (hard links where possible), and
// <dir>/git/<commit>.bundle for git sources. Path sources live in the
// repository and are skipped. Two sources with the same file name keep the
// first under that name; the checksum path always works.
func (f *Fetcher) Populate(ctx context.Context, reqs []Request, dir string, jobs int) ([]Populated, error) {
	var remote []Request
	for _, r := range reqs {
		if r.Source.Kind() != "path" {
			remote = append(remote, r)
		}
	}
	results, err := f.FetchAll(ctx, remote, jobs)
	if err != nil {
		return nil, err
	}
	var out []Populated
	var errs []error
	for i, r := range remote {
		res := results[i]
		pop := Populated{Name: r.Name, Version: r.Version}
		var names []string
		if r.Source.Kind() == "git" {
			names = []string{BundleKey(r.Source.Commit)}
		} else {
			names = []string{Key(r.Source), r.FileName()}
		}
		for j, name := range names {
			src := res.Path
			if r.Source.Kind() == "git" {
				src = f.Cache.Path(BundleKey(r.Source.Commit))
			}
			dst := filepath.Join(dir, filepath.FromSlash(name))
			placed, err := place(src, dst, j == 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("populate %s: %w", r, err))
				continue
			}
			if placed {
				pop.Paths = append(pop.Paths, dst)
			} else {
				f.log().Warn("mirror file name taken by another source; it is served by checksum only", "component", r.String(), "name", name)
			}
		}
		out = append(out, pop)
	}
	return out, errors.Join(errs...)
}

// place links (or copies) src to dst. An existing dst with the same content
// is fine; with other content it is replaced when force is set (checksum
// paths are authoritative) and left alone otherwise (file names may clash).
func place(src, dst string, force bool) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	if st, err := os.Stat(dst); err == nil {
		ss, err := os.Stat(src)
		if err != nil {
			return false, err
		}
		if os.SameFile(st, ss) || sameContent(src, dst) {
			return true, nil
		}
		if !force {
			return false, nil
		}
		if err := os.Remove(dst); err != nil {
			return false, err
		}
	}
	if err := os.Link(src, dst); err == nil {
		return true, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	tmp := dst + ".partial"
	out, err := os.Create(tmp)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, nil
}

func sameContent(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil || sa.Size() != sb.Size() {
		return false
	}
	ha, err1 := digest.File(a)
	hb, err2 := digest.File(b)
	return err1 == nil && err2 == nil && ha == hb
}

// Missing returns the requests whose sources are not in the cache (or, for
// path sources, not in the repository).
func (f *Fetcher) Missing(reqs []Request) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Source.Kind() == "path" {
			if _, err := os.Stat(filepath.Join(r.Source.Files(f.Root), r.Source.Path)); err != nil {
				out = append(out, r)
			}
			continue
		}
		if k := Key(r.Source); k == "" || !f.Cache.Has(k) {
			out = append(out, r)
		}
	}
	return out
}

// Referenced are the cache keys requests need: each source's entry, and a
// git source's bundle. Everything else in the cache is garbage to them.
func Referenced(reqs []Request) map[string]bool {
	want := map[string]bool{}
	for _, r := range reqs {
		if k := Key(r.Source); k != "" {
			want[k] = true
			if r.Source.Git != "" {
				want[BundleKey(r.Source.Commit)] = true
			}
		}
	}
	return want
}

// Entries are the keys of the cache's complete entries, sorted.
func (c *Cache) Entries() ([]string, error) {
	var out []string
	for _, dir := range []string{"sha256", "sha512", "git"} {
		entries, err := os.ReadDir(filepath.Join(c.Dir, dir))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			// A git tar's recorded digest goes with the tar; temporary
			// files are not entries; nor is anything but a regular file.
			if strings.HasSuffix(e.Name(), digestSuffix) || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
				continue
			}
			out = append(out, dir+"/"+e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// Mirrors are the mirrors given and $COACH_SOURCE_MIRROR's, as
// URL bases (an absolute directory becomes file://).
func Mirrors(given []string) ([]string, error) {
	mirrors := append([]string{}, given...)
	mirrors = append(mirrors, strings.Fields(strings.ReplaceAll(os.Getenv("COACH_SOURCE_MIRROR"), ",", " "))...)
	for i, m := range mirrors {
		switch {
		case strings.HasPrefix(m, "file://"), strings.HasPrefix(m, "http://"), strings.HasPrefix(m, "https://"):
		case filepath.IsAbs(m):
			mirrors[i] = "file://" + m
		default:
			return nil, fmt.Errorf("source mirror %q: give a file://, http:// or https:// base", m)
		}
	}
	return mirrors, nil
}
