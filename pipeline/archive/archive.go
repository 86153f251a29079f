// Package archive unpacks source archives (tar, optionally gzip, bzip2, xz
// or zstd compressed, and zip) and plain files, confined to a destination
// directory: no entry may be written outside it, by name, symlink or hard
// link, and device nodes are refused.
package archive

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"regexp"

	"bytes"
	"compress/bzip2"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/internal/proc"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is what Detect finds.
type Format string

const (
	Tar     Format = "tar"
	TarGzip Format = "tar.gz"
	TarBz2  Format = "tar.bz2"
	TarXz   Format = "tar.xz"
	TarZstd Format = "tar.zst"
	Zip     Format = "zip"
	Gzip    Format = "gz"  // a single compressed file
	Bz2     Format = "bz2" // a single compressed file
	Xz      Format = "xz"  // a single compressed file
	Zstd    Format = "zst" // a single compressed file
	Plain   Format = "file"
)

// Limits bound what one archive may write, against archive bombs.
type Limits struct {
	MaxBytes   int64 // total bytes of file content
	MaxEntries int
	// KeepLinksOut keeps symlinks whatever they point at: absolute, or
	// out of the destination. A build's layer has such links (into the
	// install dir, to the system's CA store); they are data, never
	// followed by coach. A write through one still fails: every entry is
	// created through os.Root, which follows no link out of the
	// destination. A source archive is extracted without it.
	KeepLinksOut bool
}

// DefaultLimits are generous for source trees (the largest orig tarballs
// unpack to a few GiB) and stop a bomb long before it fills a disk.
var DefaultLimits = Limits{MaxBytes: 32 << 30, MaxEntries: 2_000_000}

// Result describes what was extracted.
type Result struct {
	Format  Format `json:"format"`
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"`
	// TopDir is the single top-level directory of the archive, or "" when
	// the archive has several top-level entries.
	TopDir string `json:"top_dir,omitempty"`
}

// UnsafeError is an entry the extractor refuses to write.
type UnsafeError struct {
	Name   string
	Reason string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("unsafe archive entry %q: %s", e.Name, e.Reason)
}

var magic = []struct {
	prefix []byte
	format Format
}{
	{[]byte{0x1f, 0x8b}, Gzip},
	{[]byte("BZh"), Bz2},
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, Xz},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
	{[]byte("PK\x03\x04"), Zip},
	{[]byte("PK\x05\x06"), Zip}, // empty zip
}

// Extract unpacks src into dst, which must not exist yet. It works in a
// temporary sibling of dst (named after this process, so that a sweep
// knows whose it is) and renames it into place, so dst appears whole or
// not at all. name is the file name used for plain and single-file
// compressed sources (usually the download's base name).
func Extract(src, dst, name string, limits Limits) (*Result, error) {
	return ExtractChecked(src, dst, name, limits, Digest{})
}

// Digest is what an archive's bytes must hash to: Algo (sha256 or
// sha512) and Hex; the zero Digest checks nothing.
type Digest struct{ Algo, Hex string }

// DigestError is an archive whose bytes do not hash to the digest it was
// stored under: a corrupt cache entry.
type DigestError struct {
	File string
	Want Digest
	Got  string // the hex digest of what the file holds
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("%s is corrupt (its content hashes to %s:%s, not %s:%s)", e.File, e.Want.Algo, e.Got, e.Want.Algo, e.Want.Hex)
}

// ExtractChecked is Extract that also hashes every byte of src in the
// pass that unpacks it (and the rest of the file after the archive's
// end), and fails with a *DigestError, leaving nothing, when the bytes are
// not d's. A corrupt archive that cannot even be unpacked is reported as
// corrupt, not as a bad archive.
func ExtractChecked(src, dst, name string, limits Limits, d Digest) (*Result, error) {
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("extract %s: destination %s already exists", src, dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	SweepPartials(filepath.Dir(dst))
	tmp, err := os.MkdirTemp(filepath.Dir(dst), fmt.Sprintf(".%s.partial-%d-", filepath.Base(dst), os.Getpid()))
	if err != nil {
		return nil, err
	}
	res, err := extractInto(src, tmp, name, limits, d)
	if err != nil {
		RemoveAll(tmp)
		var de *DigestError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, fmt.Errorf("extract %s: %w", filepath.Base(src), err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		RemoveAll(tmp)
		return nil, err
	}
	return res, nil
}

// partialName matches the temporary directory of an extraction and the
// process that made it.
var partialName = regexp.MustCompile(`^\..*\.partial-([0-9]+)-[0-9]+$`)

// SweepPartials removes the temporary directories that extractions of
// processes that are gone left in dir.
func SweepPartials(dir string) {
	for _, e := range proc.Leftovers(dir, partialName) {
		if e.IsDir() {
			RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// hashing hashes what is read through it.
type hashing struct {
	r io.Reader
	h hash.Hash
}

func (h *hashing) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

func newDigestHash(algo string) hash.Hash {
	if algo == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

func extractInto(src, dst, name string, limits Limits, d Digest) (res *Result, err error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var in io.Reader = f
	var hr *hashing
	if d.Hex != "" {
		hr = &hashing{r: f, h: newDigestHash(d.Algo)}
		in = hr
	}
	br := bufio.NewReaderSize(in, 1<<20)
	if hr != nil {
		// Every byte of the file is hashed, what the unpacking left
		// unread too, whatever the unpacking made of it.
		defer func() {
			if _, cerr := io.Copy(io.Discard, br); cerr != nil && err == nil {
				err = cerr
			}
			if got := hex.EncodeToString(hr.h.Sum(nil)); got != d.Hex {
				res, err = nil, &DigestError{File: src, Want: d, Got: got}
			}
		}()
	}
	head, _ := br.Peek(8)
	format := Plain
	for _, m := range magic {
		if bytes.HasPrefix(head, m.prefix) {
			format = m.format
			break
		}
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	t := &tree{root: root, limits: limits, tops: map[string]bool{}, dirs: map[string]bool{}}
	if format == Zip {
		err = t.unzip(f)
		if err == nil {
			err = t.checkLinks()
		}
		return t.result(format), err
	}
	var r io.Reader = br
	switch format {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case Bz2:
		r = bzip2.NewReader(br)
	case Xz:
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, err
		}
		r = xr
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	inner := bufio.NewReaderSize(r, 1<<20)
	if isTar(inner) {
		switch format {
		case Gzip:
			format = TarGzip
		case Bz2:
			format = TarBz2
		case Xz:
			format = TarXz
		case Zstd:
			format = TarZstd
		default:
			format = Tar
		}
		err = t.untar(inner)
		if err == nil {
			err = t.checkLinks()
		}
		return t.result(format), err
	}
	// A plain or single compressed file: written as itself, without the
	// compression suffix.
	base := path.Base(filepath.ToSlash(name))
	if format != Plain {
		base = strings.TrimSuffix(base, "."+string(format))
	}
	if base == "" || base == "." || base == "/" {
		base = "source"
	}
	err = t.file(base, 0o644, inner, time.Time{})
	return t.result(format), err
}

// isTar looks for the ustar magic (or an old-style v7 header's checksum
// field) in the first block.
func isTar(r *bufio.Reader) bool {
	block, err := r.Peek(512)
	if err != nil {
		return false
	}
	if bytes.Equal(block[257:262], []byte("ustar")) {
		return true
	}
	_, err = tar.NewReader(bytes.NewReader(block)).Next()
	return err == nil || errors.Is(err, io.ErrUnexpectedEOF)
}

func (t *tree) result(f Format) *Result {
	r := &Result{Format: f, Entries: t.entries, Bytes: t.bytes}
	if len(t.tops) == 1 {
		for top, isDir := range t.tops {
			if isDir {
				r.TopDir = top
			}
		}
	}
	return r
}

func (t *tree) untar(r io.Reader) error {
	tr := tar.NewReader(r)
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
			if h.Typeflag == tar.TypeGNUSparse {
				return &UnsafeError{h.Name, "sparse files are not supported"}
			}
			err = t.file(h.Name, fs.FileMode(h.Mode).Perm(), tr, h.ModTime)
		case tar.TypeDir:
			var clean string
			clean, err = t.dir(h.Name, fs.FileMode(h.Mode).Perm())
			if err == nil && clean != "." {
				dirs = append(dirs, dirTime{clean, fs.FileMode(h.Mode).Perm(), h.ModTime})
			}
		case tar.TypeSymlink:
			err = t.symlink(h.Name, h.Linkname, h.ModTime)
		case tar.TypeLink:
			err = t.hardlink(h.Name, h.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			err = &UnsafeError{h.Name, "device nodes are refused"}
		case tar.TypeFifo:
			err = &UnsafeError{h.Name, "named pipes are refused"}
		case tar.TypeXGlobalHeader:
			continue // pax metadata, e.g. git archive's commit id
		default:
			err = &UnsafeError{h.Name, fmt.Sprintf("unsupported entry type %q", h.Typeflag)}
		}
		if err != nil {
			return err
		}
	}
	return t.finishDirs(dirs)
}

func (t *tree) unzip(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return err
	}
	var dirs []dirTime
	for _, zf := range zr.File {
		mode := zf.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			rc, err := zf.Open()
			if err != nil {
				return err
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return err
			}
			err = t.symlink(zf.Name, string(target), zf.Modified)
			if err != nil {
				return err
			}
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
			return &UnsafeError{zf.Name, "device nodes, pipes and sockets are refused"}
		case mode.IsDir() || strings.HasSuffix(zf.Name, "/"):
			clean, err := t.dir(zf.Name, mode.Perm())
			if err != nil {
				return err
			}
			if clean != "." {
				dirs = append(dirs, dirTime{clean, mode.Perm(), zf.Modified})
			}
		default:
			rc, err := zf.Open()
			if err != nil {
				return err
			}
			perm := mode.Perm()
			if perm == 0 {
				perm = 0o644 // zips made on Windows carry no Unix mode
			}
			err = t.file(zf.Name, perm, rc, zf.Modified)
			rc.Close()
			if err != nil {
				return err
			}
		}
	}
	return t.finishDirs(dirs)
}

type dirTime struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// tree writes entries beneath root, an os.Root, so that the kernel resolves
// every name beneath the destination and nothing can be written outside it,
// whatever links earlier entries made. Every parent of an entry must also be
// a real directory (never a symlink), and after the last entry every
// symlink must resolve beneath the destination or not at all (checkLinks).
type tree struct {
	root    *os.Root
	links   []string // symlinks written, checked at the end
	limits  Limits
	entries int
	bytes   int64
	tops    map[string]bool // top-level names -> is a directory
	// dirs holds directories known to be real directories below root.
	// Entries never replace a directory, so once known, always known.
	dirs map[string]bool
}

// clean checks an entry name and returns it relative and slash-separated.
func (t *tree) clean(name string) (string, error) {
	t.entries++
	if t.limits.MaxEntries > 0 && t.entries > t.limits.MaxEntries {
		return "", &UnsafeError{name, fmt.Sprintf("more than %d entries", t.limits.MaxEntries)}
	}
	if name == "" || strings.ContainsRune(name, 0) {
		return "", &UnsafeError{name, "empty name or NUL byte"}
	}
	slash := strings.ReplaceAll(name, "\\", "/")
	if path.IsAbs(slash) || (len(slash) > 1 && slash[1] == ':') {
		return "", &UnsafeError{name, "absolute path"}
	}
	for _, part := range strings.Split(slash, "/") {
		if part == ".." {
			return "", &UnsafeError{name, "path contains .."}
		}
	}
	c := path.Clean(slash)
	if c != "." {
		top, rest, _ := strings.Cut(c, "/")
		isDir := rest != "" || strings.HasSuffix(slash, "/")
		t.tops[top] = t.tops[top] || isDir
	}
	return c, nil
}

// parents creates the parent directories of rel, refusing to pass through
// anything but a real directory.
func (t *tree) parents(rel string) error {
	dir := path.Dir(rel)
	if dir == "." || t.dirs[dir] {
		return nil
	}
	sofar := ""
	for _, part := range strings.Split(dir, "/") {
		sofar = path.Join(sofar, part)
		if t.dirs[sofar] {
			continue
		}
		st, err := t.root.Lstat(sofar)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := t.root.Mkdir(sofar, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case st.Mode()&fs.ModeSymlink != 0:
			return &UnsafeError{rel, "a parent directory is a symlink"}
		case !st.IsDir():
			return &UnsafeError{rel, "a parent directory is a file"}
		}
		t.dirs[sofar] = true
	}
	return nil
}

// replace removes an existing non-directory entry at p so a later entry of
// the same name wins, as tar does.
func (t *tree) replace(rel string) error {
	st, err := t.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return &UnsafeError{rel, "replaces a directory"}
	}
	return t.root.Remove(rel)
}

func (t *tree) file(name string, perm fs.FileMode, r io.Reader, mtime time.Time) error {
	rel, err := t.clean(name)
	if err != nil {
		return err
	}
	if rel == "." {
		return &UnsafeError{name, "a file at the root"}
	}
	if err := t.parents(rel); err != nil {
		return err
	}
	f, err := t.root.OpenFile(rel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// A later entry of the same name wins, as with tar.
		if err := t.replace(rel); err != nil {
			return err
		}
		f, err = t.root.OpenFile(rel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	}
	if err != nil {
		return err
	}
	limit := t.limits.MaxBytes - t.bytes
	if t.limits.MaxBytes <= 0 {
		limit = 1<<63 - 1
	}
	n, err := copyBuffered(f, io.LimitReader(r, limit+1))
	t.bytes += n
	if err == nil && t.limits.MaxBytes > 0 && t.bytes > t.limits.MaxBytes {
		err = &UnsafeError{name, fmt.Sprintf("the archive unpacks to more than %d bytes", t.limits.MaxBytes)}
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && !mtime.IsZero() {
		err = setFileTimes(f, mtime)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (t *tree) dir(name string, perm fs.FileMode) (string, error) {
	rel, err := t.clean(name)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return rel, nil
	}
	if err := t.parents(rel + "/x"); err != nil {
		return "", err
	}
	return rel, nil
}

func (t *tree) symlink(name, target string, mtime time.Time) error {
	rel, err := t.clean(name)
	if err != nil {
		return err
	}
	if rel == "." {
		return &UnsafeError{name, "a symlink at the root"}
	}
	if target == "" || (path.IsAbs(target) && !t.limits.KeepLinksOut) {
		return &UnsafeError{name, fmt.Sprintf("symlink to the absolute path %q", target)}
	}
	if err := t.parents(rel); err != nil {
		return err
	}
	if err := t.replace(rel); err != nil {
		return err
	}
	if err := t.root.Symlink(target, rel); err != nil {
		return err
	}
	t.links = append(t.links, rel)
	if !mtime.IsZero() {
		// A symlink's own times, through its parent's descriptor.
		if dir, err := t.root.Open(path.Dir(rel)); err == nil {
			setLinkTimes(dir, path.Base(rel), mtime)
			dir.Close()
		}
	}
	return nil
}

// checkLinks refuses the archive if any symlink in it resolves outside the
// destination, directly or through a chain of other links (a link up ->
// ../.. deep in the tree, then X -> a/b/up/../../etc): the kernel resolves
// each one beneath the root, following the links the archive made. A link
// to a name that does not exist in the tree is kept.
func (t *tree) checkLinks() error {
	if t.limits.KeepLinksOut {
		return nil
	}
	for _, rel := range t.links {
		_, err := t.root.Stat(rel)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		target, _ := t.root.Readlink(rel)
		return &UnsafeError{rel, fmt.Sprintf("symlink to %q resolves outside the destination (%v)", target, err)}
	}
	return nil
}

func (t *tree) hardlink(name, target string) error {
	rel, err := t.clean(name)
	if err != nil {
		return err
	}
	t.entries-- // the target's check below is not a new entry
	trel, err := t.clean(target)
	if err != nil {
		return &UnsafeError{name, fmt.Sprintf("hard link to %q: %s", target, err.(*UnsafeError).Reason)}
	}
	if rel == "." || trel == "." {
		return &UnsafeError{name, "hard link at or to the root"}
	}
	if err := t.parents(trel); err != nil {
		return &UnsafeError{name, fmt.Sprintf("hard link to %q: %s", target, err)}
	}
	st, err := t.root.Lstat(trel)
	if err != nil || !st.Mode().IsRegular() {
		return &UnsafeError{name, fmt.Sprintf("hard link to %q, which is not a regular file extracted earlier", target)}
	}
	if err := t.parents(rel); err != nil {
		return err
	}
	if err := t.replace(rel); err != nil {
		return err
	}
	return t.root.Link(trel, rel)
}

// finishDirs applies directory modes and times last, deepest first, so that
// writing entries did not disturb them. Owners keep rwx so the tree can be
// cleaned up.
func (t *tree) finishDirs(dirs []dirTime) error {
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := t.root.Chmod(d.name, d.mode|0o700); err != nil {
			return err
		}
		if !d.mtime.IsZero() {
			if err := t.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
				return err
			}
		}
	}
	return nil
}

var copyBuf = make(chan []byte, 4)

func copyBuffered(w io.Writer, r io.Reader) (int64, error) {
	var buf []byte
	select {
	case buf = <-copyBuf:
	default:
		buf = make([]byte, 256<<10)
	}
	defer func() {
		select {
		case copyBuf <- buf:
		default:
		}
	}()
	return io.CopyBuffer(w, r, buf)
}

// RemoveAll removes a tree even where directory modes deny writing,
// following no symlink beneath p's parent (confine.RemoveAll).
func RemoveAll(p string) error {
	p = filepath.Clean(p)
	return confine.RemoveAll(context.Background(), filepath.Dir(p), filepath.Base(p))
}
