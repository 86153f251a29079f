package fetch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/internal/cachedir"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/internal/proc"
	"github.com/coach-build/coach/pipeline/resolve"
)

// Cache is the content-addressed source cache:
//
//	<dir>/sha256/<hex>         url sources pinned by sha256
//	<dir>/sha512/<hex>         url sources pinned by sha512
//	<dir>/git/<commit>.tar     git sources, as a tar of the pinned commit
//	<dir>/locks/               one lock file per key, for concurrent processes
//	<dir>/tmp/                 downloads in progress (unnamed files where the
//	                           filesystem allows, so a killed process leaves nothing)
//
// An entry is only ever created by linking a complete, verified file into
// place, so its presence means it is good.
type Cache struct {
	Dir string
}

// DefaultDir is $COACH_CACHE_DIR, or coach/ under the user cache directory.
func DefaultDir() string { return cachedir.Default() }

// Key is where a source lives in the cache, relative to its root, or "" for
// sources that are not cached (path sources).
func Key(src resolve.Source) string {
	switch {
	case src.SHA256 != "":
		return "sha256/" + src.SHA256
	case src.SHA512 != "":
		return "sha512/" + src.SHA512
	case src.Git != "":
		return "git/" + src.Commit + ".tar"
	}
	return ""
}

// Path is the cache file for a key.
func (c *Cache) Path(key string) string { return filepath.Join(c.Dir, filepath.FromSlash(key)) }

// Has reports whether the cache holds key.
func (c *Cache) Has(key string) bool {
	st, err := os.Stat(c.Path(key))
	return err == nil && st.Mode().IsRegular()
}

func (c *Cache) init() error {
	for _, d := range []string{"sha256", "sha512", "git", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// lock takes an exclusive lock for key, shared with other processes, and
// waits for it while ctx allows.
func (c *Cache) lock(ctx context.Context, key string) (unlock func(), err error) {
	return lockfile.Lock(ctx, filepath.Join(c.Dir, "locks", strings.ReplaceAll(key, "/", "-")+".lock"), 50*time.Millisecond)
}

// pending is a file being written into the cache. It becomes visible only
// through commit.
type pending struct {
	*os.File
	named string // the temporary name when the filesystem has no O_TMPFILE
}

// create starts a new cache file. Where the kernel and filesystem support
// O_TMPFILE the file has no name until commit, so an interrupted download
// leaves nothing at all; otherwise it is named after this process, and
// SweepPartials removes it once the process is gone.
func (c *Cache) create() (*pending, error) {
	dir := filepath.Join(c.Dir, "tmp")
	if f, err := openUnnamed(dir); err == nil {
		return &pending{File: f}, nil
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("partial-%d-*", os.Getpid()))
	if err != nil {
		return nil, err
	}
	return &pending{File: f, named: f.Name()}, nil
}

// commit makes a complete file visible at key. An existing entry is kept:
// entries are content-addressed, so it has the same bytes.
func (c *Cache) commit(p *pending, key string) error {
	defer p.discard()
	if err := p.Sync(); err != nil {
		return err
	}
	if err := p.Chmod(0o644); err != nil {
		return err
	}
	final := c.Path(key)
	var err error
	if p.named != "" {
		err = os.Link(p.named, final)
	} else {
		err = linkUnnamed(p.File, final)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// The data was synced before the link; now the link itself.
	return durable.SyncDir(filepath.Dir(final))
}

func (p *pending) discard() {
	p.Close()
	if p.named != "" {
		os.Remove(p.named)
	}
}

// reset empties a pending file for another attempt.
func (p *pending) reset() error {
	if _, err := p.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return p.Truncate(0)
}

// SweepPartials removes named partial files of processes that no longer run.
func (c *Cache) SweepPartials() (removed int) {
	for _, e := range proc.Leftovers(filepath.Join(c.Dir, "tmp"), partialName) {
		if os.RemoveAll(filepath.Join(c.Dir, "tmp", e.Name())) == nil {
			removed++
		}
	}
	return removed
}

// partialName matches a partial download's file (CreateTemp's
// partial-<pid>-*) and the process that writes it.
var partialName = regexp.MustCompile(`^partial-([0-9]+)-`)

// digestSuffix names the file beside a git tar that holds its sha256.
const digestSuffix = ".sha256"

// digest fills in what res's cache file must hash to, and reports whether
// that is known: a url source's pin, a git tar's recorded digest.
func (c *Cache) digest(src resolve.Source, res *Result) bool {
	switch {
	case src.SHA256 != "":
		res.Algo, res.Hex = "sha256", src.SHA256
	case src.SHA512 != "":
		res.Algo, res.Hex = "sha512", src.SHA512
	case src.Git != "":
		b, err := os.ReadFile(c.Path(Key(src)) + digestSuffix)
		hexSum := strings.TrimSpace(string(b))
		if err != nil || len(hexSum) != 64 {
			return false
		}
		res.Algo, res.Hex = "sha256", hexSum
	default:
		return false
	}
	return true
}

// writeDigest records a git tar's sha256 beside where it goes.
func (c *Cache) writeDigest(key, hexSum string) error {
	return writeFileAtomic(c.Path(key)+digestSuffix, []byte(hexSum+"\n"))
}

// Evict removes a corrupt entry, under its lock, so that the next fetch
// brings it again.
func (c *Cache) Evict(ctx context.Context, key string) error {
	unlock, err := c.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	c.remove(key)
	return nil
}

func (c *Cache) remove(key string) {
	os.Remove(c.Path(key))
	os.Remove(c.Path(key) + digestSuffix)
}

// writeFileAtomic writes a small file durably (package durable).
func writeFileAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, 0o644)
}

// Hash is the hex digest (sha256 or sha512) of an entry's bytes, read
// through a bounded, interruptible reader.
func (c *Cache) Hash(ctx context.Context, key, algo string) (string, error) {
	f, _, err := OpenRegular(c.Path(key))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := newHash(algo)
	if _, err := io.Copy(h, &Bounded{Ctx: ctx, R: f, Limit: MaxSourceBytes, Name: c.Path(key)}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
