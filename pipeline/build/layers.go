package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/internal/proc"
)

// LayerCache keeps each component's layer under its plan key:
//
//	<dir>/<key>/layer/      the files the component added under install_dir
//	<dir>/<key>/meta.json   what built it, when, and how big it is
//	<dir>/<key>/manifest    every entry of the layer with its content's sha256;
//	                        its own sha256 is the layer's digest
//	<dir>/<key>/index       each file's inode, size and modification time as
//	                        the manifest saw them
//	<dir>/<key>/build.log   the build's output
//	<dir>/tmp/              layers being built
//
// A layer is built in tmp and renamed into place only when complete, so a
// half-built layer (interrupted, killed, failed) never counts as built.
// Before a cached layer is used it is checked (Verify): its manifest must
// hash to the recorded digest, and every file must still have the inode,
// size and time the index recorded, or hash to what the manifest says.
type LayerCache struct {
	Dir string
}

// LayerMeta describes a cached layer.
type LayerMeta struct {
	Component string    `json:"component"`
	Version   string    `json:"version"`
	Target    string    `json:"target"`
	Key       string    `json:"key"`
	Files     int       `json:"files"`
	Bytes     int64     `json:"bytes"`
	BuiltAt   time.Time `json:"built_at"`
	Seconds   float64   `json:"seconds"`
	// Digest is the layer's content digest (confine.TreeDigest): what a
	// dependent's key covers.
	Digest string `json:"digest"`
	// Origin is the remote cache the layer was pulled from; empty for a
	// layer built here.
	Origin string `json:"origin,omitempty"`
	// Inputs is what the key covers: the component's input key, the
	// build environment's identity and the digest of each layer the
	// build saw.
	Inputs *KeyInputs `json:"inputs,omitempty"`
}

// KeyInputs is what a layer's key is the digest of.
type KeyInputs struct {
	// Input is the plan's input key: the component's definition, version,
	// source, target, arch and install dir.
	Input string `json:"input"`
	// Environment is the build environment's identity (the sandbox root
	// filesystem's key, the Dagger image and its packages).
	Environment string `json:"environment,omitempty"`
	// Layers are the content digests of the dependency layers the build
	// saw (every transitive dependency), by component.
	Layers map[string]string `json:"layers"`
}

func keyDir(key string) string { return strings.TrimPrefix(key, "sha256:") }

// Lookup returns the layer directory and metadata for key, if cached.
func (c *LayerCache) Lookup(key string) (string, *LayerMeta, bool) {
	dir := filepath.Join(c.Dir, keyDir(key))
	data, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return "", nil, false
	}
	var m LayerMeta
	if json.Unmarshal(data, &m) != nil || m.Key != key {
		return "", nil, false
	}
	return filepath.Join(dir, "layer"), &m, true
}

// Environments are the build environments the cached layers were built in
// (KeyInputs.Environment, "" for a runner without one).
func (c *LayerCache) Environments() []string {
	set := map[string]bool{}
	for m := range c.metas() {
		if m.Inputs != nil {
			set[m.Inputs.Environment] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// metas yields the metadata of every cached layer that has readable
// metadata.
func (c *LayerCache) metas() iter.Seq[LayerMeta] {
	return func(yield func(LayerMeta) bool) {
		entries, _ := os.ReadDir(c.Dir)
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(c.Dir, e.Name(), "meta.json"))
			if err != nil {
				continue
			}
			var m LayerMeta
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			if !yield(m) {
				return
			}
		}
	}
}

// Touch marks a layer used now: cache gc removes the least recently used
// first.
func (c *LayerCache) Touch(key string) {
	now := time.Now()
	os.Chtimes(filepath.Join(c.Dir, keyDir(key), "meta.json"), now, now)
}

// Durations returns how long each component's most recent build in this
// cache took, whatever its key or target: the scheduler's estimate of how
// long the next build of it will take.
func (c *LayerCache) Durations() map[string]float64 {
	out := map[string]float64{}
	latest := map[string]time.Time{}
	for m := range c.metas() {
		if m.Seconds > 0 && m.BuiltAt.After(latest[m.Component]) {
			out[m.Component], latest[m.Component] = m.Seconds, m.BuiltAt
		}
	}
	return out
}

// pendingLayer is a layer being built.
type pendingLayer struct {
	c   *LayerCache
	key string
	tmp string
}

// begin starts a layer for key in a temporary directory named after this
// process, after sweeping temporaries of processes that are gone.
func (c *LayerCache) begin(key string) (*pendingLayer, error) {
	tmpRoot := filepath.Join(c.Dir, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return nil, err
	}
	c.sweep()
	tmp, err := os.MkdirTemp(tmpRoot, fmt.Sprintf("%d-%s-", os.Getpid(), keyDir(key)[:12]))
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(tmp, "layer"), 0o755); err != nil {
		return nil, err
	}
	return &pendingLayer{c: c, key: key, tmp: tmp}, nil
}

func (p *pendingLayer) layerDir() string { return filepath.Join(p.tmp, "layer") }

// commit records meta and moves the layer into place. If another process
// committed the same key first, its layer is kept: same key, same inputs.
// A non-empty want is the content digest the layer must have (a layer
// pulled from a remote cache); a tree with another is a *DigestMismatch,
// and nothing is committed.
func (p *pendingLayer) commit(meta LayerMeta, logPath, want string) (string, error) {
	files, bytes, err := treeSize(p.layerDir())
	if err != nil {
		return "", err
	}
	meta.Files, meta.Bytes, meta.Key = files, bytes, p.key
	root, err := confine.Open(p.layerDir())
	if err != nil {
		return "", err
	}
	manifest, stats, err := confine.Manifest(root)
	root.Close()
	if err != nil {
		return "", fmt.Errorf("digest the layer: %w", err)
	}
	meta.Digest = confine.ManifestDigest(manifest)
	if want != "" && meta.Digest != want {
		return "", &DigestMismatch{Want: want, Got: meta.Digest}
	}
	if err := os.WriteFile(filepath.Join(p.tmp, "manifest"), manifest, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(p.tmp, "index"), encodeIndex(stats), 0o644); err != nil {
		return "", err
	}
	data, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(p.tmp, "meta.json"), data, 0o644); err != nil {
		return "", err
	}
	if logPath != "" {
		archive.CopyFile(logPath, filepath.Join(p.tmp, "build.log"), 0o644)
	}
	// Published durably: its files are on disk before the rename makes
	// it a layer, and the rename before the build goes on.
	final := filepath.Join(p.c.Dir, keyDir(p.key))
	if err := durable.Publish(p.tmp, final); err != nil {
		if _, _, ok := p.c.Lookup(p.key); ok {
			p.discard()
			return filepath.Join(final, "layer"), nil
		}
		// An incomplete leftover without meta.json: replace it.
		archive.RemoveAll(final)
		if err := durable.Publish(p.tmp, final); err != nil {
			return "", err
		}
	}
	return filepath.Join(final, "layer"), nil
}

func (p *pendingLayer) discard() { archive.RemoveAll(p.tmp) }

// Leftovers are the temporary layers of processes that no longer run.
func (c *LayerCache) Leftovers() []string {
	var out []string
	tmp := filepath.Join(c.Dir, "tmp")
	for _, e := range proc.Leftovers(tmp, pendingName) {
		out = append(out, filepath.Join(tmp, e.Name()))
	}
	return out
}

// pendingName matches a temporary layer's name, <pid>-…, and the process
// that makes it.
var pendingName = regexp.MustCompile(`^([0-9]+)(?:-|$)`)

// sweep removes the leftovers.
func (c *LayerCache) sweep() {
	for _, p := range c.Leftovers() {
		archive.RemoveAll(p)
	}
}

func treeSize(dir string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				bytes += info.Size()
			}
		}
		return nil
	})
	return files, bytes, err
}

// NamedLayer is a layer and the component it belongs to.
type NamedLayer struct {
	Component string
	Dir       string
	// Digest is the layer's content digest.
	Digest string
}

// ConflictError lists paths that more than one layer writes.
type ConflictError struct {
	Conflicts []Conflict
}

// Conflict is one path written by two components.
type Conflict struct {
	Path  string `json:"path"`
	First string `json:"first"`
	Other string `json:"other"`
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d paths are written by more than one component:", len(e.Conflicts))
	for i, c := range e.Conflicts {
		if i == 20 {
			fmt.Fprintf(&b, "\n\t... and %d more", len(e.Conflicts)-20)
			break
		}
		fmt.Fprintf(&b, "\n\t%s: %s and %s", c.Path, c.First, c.Other)
	}
	b.WriteString("\n\t(a component must not overwrite its dependencies' files; install into a path of its own)")
	return b.String()
}

// Merge lays the layers out in dst, in order, hard-linking files (copying
// across filesystems). Directories may be shared; any other path written by
// two layers is a conflict, and every conflict is reported.
func Merge(layers []NamedLayer, dst string) error {
	owner := map[string]string{}
	var conflicts []Conflict
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	out, err := confine.Open(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, l := range layers {
		in, err := confine.Open(l.Dir)
		if err != nil {
			return err
		}
		err = fs.WalkDir(in.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if rel == "." {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if d.IsDir() {
				if prev, ok := owner[rel]; ok && prev != "" {
					conflicts = append(conflicts, Conflict{rel, prev, l.Component})
					return fs.SkipDir
				}
				if _, ok := owner[rel]; !ok {
					owner[rel] = ""
					return out.MkdirAll(rel, info.Mode().Perm()|0o700)
				}
				return nil
			}
			if prev, ok := owner[rel]; ok {
				if prev == "" {
					prev = "a directory"
				}
				conflicts = append(conflicts, Conflict{rel, prev, l.Component})
				return nil
			}
			owner[rel] = l.Component
			if d.Type()&fs.ModeSymlink != 0 {
				link, err := in.Readlink(rel)
				if err != nil {
					return err
				}
				return out.Symlink(link, rel)
			}
			if !info.Mode().IsRegular() {
				return fmt.Errorf("layer of %s: %s is not a regular file, directory or symlink", l.Component, rel)
			}
			if err := confine.Link(in, rel, out, rel); err != nil {
				if !confine.CannotLink(err) {
					return err
				}
				return confine.CopyFile(in, rel, out, rel, info.Mode().Perm())
			}
			return nil
		})
		in.Close()
		if err != nil {
			return err
		}
	}
	if len(conflicts) > 0 {
		slices.SortFunc(conflicts, func(a, b Conflict) int { return strings.Compare(a.Path, b.Path) })
		return &ConflictError{Conflicts: conflicts}
	}
	return nil
}

// LockWork takes the lock of a work directory (one project and target) for
// the rest of a run: two coach processes building the same project for the
// same target would otherwise delete and merge each other's trees. The
// second waits, saying so once, until the first is done or ctx ends.
func LockWork(ctx context.Context, workDir string, log *slog.Logger) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(workDir), 0o755); err != nil {
		return nil, err
	}
	path := workDir + ".lock"
	quick, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	unlock, err = lockfile.Lock(quick, path, 10*time.Millisecond)
	cancel()
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		holder, _ := os.ReadFile(path)
		if log != nil {
			log.Warn("waiting for another coach run that is using this work directory", "dir", workDir, "holder", strings.TrimSpace(string(holder)))
		}
		unlock, err = lockfile.Lock(ctx, path, 200*time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", workDir, err)
	}
	os.WriteFile(path, []byte(fmt.Sprintf("pid %d\n", os.Getpid())), 0o644)
	return unlock, nil
}

// encodeIndex writes the stats one a line: inode, size, time, path.
func encodeIndex(stats []confine.FileStat) []byte {
	var b strings.Builder
	for _, st := range stats {
		fmt.Fprintf(&b, "%d %d %d %q\n", st.Inode, st.Size, st.MTime, st.Path)
	}
	return []byte(b.String())
}

func decodeIndex(data []byte) ([]confine.FileStat, error) {
	var out []confine.FileStat
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		var st confine.FileStat
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("index line %q", line)
		}
		var err1, err2, err3, err4 error
		st.Inode, err1 = strconv.ParseUint(f[0], 10, 64)
		st.Size, err2 = strconv.ParseInt(f[1], 10, 64)
		st.MTime, err3 = strconv.ParseInt(f[2], 10, 64)
		st.Path, err4 = strconv.Unquote(f[3])
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("index line %q: %w", line, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// CorruptError is a cached layer whose bytes are not the ones it was
// stored with.
type CorruptError struct {
	Key, Component string
	Reason         string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("cache entry layers/%s (%s) is corrupt: %s", keyDir(e.Key), e.Component, e.Reason)
}

// Verify checks a cached layer before it is used: its manifest must hash
// to the digest its metadata records, and each file must have the inode,
// size and modification time the index recorded when the layer was made,
// or else hash to what the manifest says (a file touched but not changed
// passes). It reads every file's metadata, and the content only of files
// whose metadata changed, so an untouched layer costs a stat per file.
// Bit rot that leaves the metadata alone is found when the layer's bytes
// are read in full: by packaging, which checks every file against the
// manifests, and by coach cache verify.
func (c *LayerCache) Verify(key string, meta *LayerMeta) error {
	dir := filepath.Join(c.Dir, keyDir(key))
	corrupt := func(format string, args ...any) error {
		return &CorruptError{Key: key, Component: meta.Component, Reason: fmt.Sprintf(format, args...)}
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest"))
	if err != nil {
		return corrupt("its manifest cannot be read: %v", err)
	}
	if got := confine.ManifestDigest(manifest); got != meta.Digest {
		return corrupt("its manifest hashes to %s, not to the digest its metadata records (%s)", got, meta.Digest)
	}
	data, err := os.ReadFile(filepath.Join(dir, "index"))
	if err != nil {
		return corrupt("its index cannot be read: %v", err)
	}
	stats, err := decodeIndex(data)
	if err != nil {
		return corrupt("its index: %v", err)
	}
	// One stat a file, by descriptors (os.Root would resolve every path
	// from the top); a file whose stat differs from the index is hashed.
	actual, err := confine.RegularStats(filepath.Join(dir, "layer"))
	if err != nil {
		return corrupt("%v", err)
	}
	var root *os.Root
	defer func() {
		if root != nil {
			root.Close()
		}
	}()
	var sums map[string]string
	for _, want := range stats {
		if got, ok := actual[want.Path]; ok && got.Size == want.Size && got.MTime == want.MTime && got.Inode == want.Inode {
			continue
		}
		if _, ok := actual[want.Path]; !ok {
			return corrupt("%s: missing, or no longer a regular file", want.Path)
		}
		if root == nil {
			if root, err = confine.Open(filepath.Join(dir, "layer")); err != nil {
				return corrupt("%v", err)
			}
		}
		if sums == nil {
			if sums, err = confine.ManifestFiles(manifest); err != nil {
				return corrupt("its manifest: %v", err)
			}
		}
		got, err := confine.HashFile(root, want.Path)
		if err != nil {
			return corrupt("%s: %v", want.Path, err)
		}
		if got != sums[want.Path] {
			return corrupt("%s hashes to sha256:%s, not to the recorded sha256:%s", want.Path, got, sums[want.Path])
		}
	}
	return nil
}

// Manifest is a cached layer's manifest, checked against the digest its
// metadata records.
func (c *LayerCache) Manifest(key string, meta *LayerMeta) ([]byte, error) {
	m, err := os.ReadFile(filepath.Join(c.Dir, keyDir(key), "manifest"))
	if err != nil {
		return nil, &CorruptError{Key: key, Component: meta.Component, Reason: fmt.Sprintf("its manifest cannot be read: %v", err)}
	}
	if got := confine.ManifestDigest(m); got != meta.Digest {
		return nil, &CorruptError{Key: key, Component: meta.Component, Reason: fmt.Sprintf("its manifest hashes to %s, not to the digest its metadata records (%s)", got, meta.Digest)}
	}
	return m, nil
}

// Evict takes a corrupt layer out of the cache: it is renamed into tmp
// under this process's name (so no lookup finds it, and a sweep removes it
// if this process dies) and removed.
func (c *LayerCache) Evict(key string) error {
	dir := filepath.Join(c.Dir, keyDir(key))
	if err := os.MkdirAll(filepath.Join(c.Dir, "tmp"), 0o755); err != nil {
		return err
	}
	gone := filepath.Join(c.Dir, "tmp", fmt.Sprintf("%d-evicted-%s", os.Getpid(), keyDir(key)[:12]))
	archive.RemoveAll(gone)
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return archive.RemoveAll(gone)
}

// DigestMismatch is a layer whose tree is not the one its metadata names.
type DigestMismatch struct{ Want, Got string }

func (e *DigestMismatch) Error() string {
	return fmt.Sprintf("its tree hashes to %s, not to the digest its metadata records (%s)", e.Got, e.Want)
}

// MetaJSON is a cached layer's metadata as stored: what a remote cache
// entry carries.
func (c *LayerCache) MetaJSON(key string) ([]byte, error) {
	return os.ReadFile(filepath.Join(c.Dir, keyDir(key), "meta.json"))
}

// Pull brings the layer of key from r into this cache and returns it as
// Lookup would. The tree is unpacked by r (confined) into a temporary
// layer, and committed only when its content digest is the one its
// metadata records and the metadata is the layer of key; anything else is
// said (log) and is a miss (ok false), so the caller builds. Errors are
// r's that must fail the build (a required cache that cannot be reached).
func (c *LayerCache) Pull(ctx context.Context, r Remote, key string, inputs *KeyInputs, origin string, log *slog.Logger) (dir string, meta *LayerMeta, ok bool, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := c.begin(key)
	if err != nil {
		return "", nil, false, err
	}
	defer func() {
		if !ok {
			p.discard()
		}
	}()
	// The remote unpacks into a directory that does not exist yet.
	if err := os.Remove(p.layerDir()); err != nil {
		return "", nil, false, err
	}
	raw, err := r.PullLayer(ctx, key, p.layerDir())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, err
	}
	refuse := func(reason string) (string, *LayerMeta, bool, error) {
		log.Warn(fmt.Sprintf("remote cache %s: the entry of layer %s is refused: %s; building it here", origin, shortKey(key), reason))
		return "", nil, false, nil
	}
	var m LayerMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return refuse("its metadata is not coach's: " + err.Error())
	}
	if m.Key != key {
		return refuse(fmt.Sprintf("its metadata is the layer of %s", m.Key))
	}
	if m.Digest == "" {
		return refuse("its metadata records no content digest")
	}
	m.Inputs, m.Origin = inputs, origin
	if _, err := p.commit(m, "", m.Digest); err != nil {
		var dm *DigestMismatch
		if errors.As(err, &dm) {
			return refuse(fmt.Sprintf("%s %s: %v", m.Component, m.Version, dm))
		}
		return "", nil, false, err
	}
	ok = true
	dir, meta, found := c.Lookup(key)
	if !found {
		return "", nil, false, fmt.Errorf("layer %s: pulled, but not found in the cache", shortKey(key))
	}
	return dir, meta, true, nil
}
