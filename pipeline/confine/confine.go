// Package confine is the one way coach works, on the host and as root, on a
// tree it did not write itself: extracted sources, source trees after the
// build, layers, the merged tree, license files, patches and path sources.
//
// Every operation goes through an os.Root: the kernel resolves each path one
// component at a time beneath the root's directory, symlinks included, and a
// path that would leave it (by "..", an absolute symlink or a chain of
// relative ones) fails. Nothing here joins strings and checks them.
package confine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrSymlinkRoot is a tree whose top directory is itself a symlink.
var ErrSymlinkRoot = errors.New("is a symlink, not a directory")

// Open opens dir as a root. A dir that is itself a symlink is refused: the
// root must be what its path names, not wherever a link points.
func Open(dir string) (*os.Root, error) {
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s %w", dir, ErrSymlinkRoot)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	return os.OpenRoot(dir)
}

// MaxTextBytes bounds the text files coach reads from a tree it did not
// write or from the repository (license texts, the changelog): the longest
// licence texts are tens of KiB (GPL-3.0 is 35 KiB) and aggregated
// third-party notices a few MiB, so 16 MiB is far above any real one, and
// a planted 10 GB file is refused at once instead of copied.
const MaxTextBytes = 16 << 20

// ErrNotRegular is a path that names something other than a regular file
// (a FIFO, a device, a directory) where coach reads a file's content.
var ErrNotRegular = errors.New("is not a regular file")

// TooLargeError is a file over the bound coach reads it under.
type TooLargeError struct {
	Path        string
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is %d bytes, over the %d bytes coach reads of such a file", e.Path, e.Size, e.Limit)
}

// OpenRegular opens rel beneath root for reading. It is opened without
// blocking, so that a FIFO planted there cannot hang coach, and refused
// unless it is a regular file of at most limit bytes (limit < 0: any
// size).
func OpenRegular(root *os.Root, rel string, limit int64) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s %w (%s)", rel, ErrNotRegular, typeName(st.Mode()))
	}
	if limit >= 0 && st.Size() > limit {
		f.Close()
		return nil, nil, &TooLargeError{Path: rel, Size: st.Size(), Limit: limit}
	}
	return f, st, nil
}

// ReadFile reads the regular file rel beneath root, of at most limit
// bytes (see OpenRegular).
func ReadFile(root *os.Root, rel string, limit int64) ([]byte, error) {
	f, st, err := OpenRegular(root, rel, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, st.Size()))
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// CopyFile copies the regular file srcRel beneath src to a new file dstRel
// beneath dst with exactly mode perm, making dstRel's parents. srcRel may
// pass through symlinks that stay beneath src; dstRel is never replaced, so
// a symlink planted at dstRel is not written through. A FIFO or a device
// at srcRel is refused without being read.
func CopyFile(src *os.Root, srcRel string, dst *os.Root, dstRel string, perm fs.FileMode) error {
	return CopyFileMax(src, srcRel, dst, dstRel, perm, -1)
}

// CopyFileMax is CopyFile of a file of at most limit bytes.
func CopyFileMax(src *os.Root, srcRel string, dst *os.Root, dstRel string, perm fs.FileMode, limit int64) error {
	in, st, err := OpenRegular(src, srcRel, limit)
	if err != nil {
		return err
	}
	defer in.Close()
	if dir := filepath.Dir(dstRel); dir != "." {
		if err := dst.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return writeNew(dst, dstRel, perm, io.LimitReader(in, st.Size()))
}

// writeNew creates dstRel beneath dst (O_EXCL: an existing entry, symlink
// or not, is an error) and copies r into it.
func writeNew(dst *os.Root, dstRel string, perm fs.FileMode, r io.Reader) error {
	out, err := dst.OpenFile(dstRel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if err == nil {
		err = out.Chmod(perm)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// CopyTree copies everything beneath src into dst, keeping modes, mtimes
// and symlinks (copied as links, never followed). Directories that exist in
// dst are merged into; any other existing entry is an error, and so is
// anything but a directory, a regular file or a symlink.
func CopyTree(src, dst *os.Root) error {
	return fs.WalkDir(src.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := src.Readlink(rel)
			if err != nil {
				return err
			}
			return dst.Symlink(link, rel)
		case d.IsDir():
			if rel == "." {
				return nil
			}
			if err := dst.Mkdir(rel, info.Mode().Perm()|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if st, err := dst.Lstat(rel); err != nil || !st.IsDir() {
				return fmt.Errorf("%s: exists and is not a directory", rel)
			}
			return nil
		case info.Mode().IsRegular():
			in, err := src.Open(rel)
			if err != nil {
				return err
			}
			defer in.Close()
			if err := writeNew(dst, rel, info.Mode().Perm(), in); err != nil {
				return err
			}
			return dst.Chtimes(rel, info.ModTime(), info.ModTime())
		}
		return fmt.Errorf("%s: unsupported file type %s", rel, info.Mode().Type())
	})
}

// CopyTreeDirs is CopyTree between two directories, each opened as a root.
func CopyTreeDirs(srcDir, dstDir string) error {
	src, err := Open(srcDir)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return err
	}
	dst, err := Open(dstDir)
	if err != nil {
		return err
	}
	defer dst.Close()
	return CopyTree(src, dst)
}

// Link makes dstRel beneath dst a hard link to the file srcRel beneath src
// (two trees on one filesystem). Both parents are opened through their
// roots, and neither name is followed if it is a symlink.
func Link(src *os.Root, srcRel string, dst *os.Root, dstRel string) error {
	from, err := src.Open(filepath.Dir(srcRel))
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := dst.Open(filepath.Dir(dstRel))
	if err != nil {
		return err
	}
	defer to.Close()
	return linkat(from, filepath.Base(srcRel), to, filepath.Base(dstRel))
}

// TreeDigest is the digest of the tree beneath root: each entry's path,
// type, permission bits, content and symlink target, and nothing else (not
// times, owners or the order the directory lists entries in). Every read
// goes through root, so a tree that changes under the walk cannot lead it
// outside. It is the sha256 of the tree's Manifest.
func TreeDigest(root *os.Root) (string, error) {
	m, _, err := Manifest(root)
	if err != nil {
		return "", err
	}
	return ManifestDigest(m), nil
}

// ManifestDigest is the digest of a tree whose manifest is m.
func ManifestDigest(m []byte) string {
	sum := sha256.Sum256(m)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FileStat is what a regular file of a tree looked like when its
// manifest was made: a file that still has the same inode, size and
// modification time is taken to have the same content (as git's index
// does), and one that does not is hashed again.
type FileStat struct {
	Path  string
	Inode uint64
	Size  int64
	MTime int64 // nanoseconds
}

// Manifest lists the tree beneath root, one line per entry in walk order:
// a directory's path and permission bits, a regular file's path, bits and
// sha256, a symlink's path and target. Its sha256 is the tree's digest.
// The regular files' stats come with it.
func Manifest(root *os.Root) ([]byte, []FileStat, error) {
	var b bytes.Buffer
	var stats []FileStat
	fsys := root.FS()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := info.Mode().Perm() | info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			dest, err := root.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%q link %q\n", p, dest)
		case info.IsDir():
			fmt.Fprintf(&b, "%q dir %o\n", p, perm)
		case info.Mode().IsRegular():
			sum, st, err := hashFile(root, p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%q file %o %s\n", p, perm, sum)
			stats = append(stats, st)
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, info.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return b.Bytes(), stats, nil
}

// hashFile is the sha256 of the regular file rel beneath root, and its
// stat as it was read.
func hashFile(root *os.Root, rel string) (string, FileStat, error) {
	f, st, err := OpenRegular(root, rel, -1)
	if err != nil {
		return "", FileStat{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", FileStat{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), statOf(rel, st), nil
}

// HashFile is the hex sha256 of the regular file rel beneath root.
func HashFile(root *os.Root, rel string) (string, error) {
	sum, _, err := hashFile(root, rel)
	return sum, err
}

// ManifestFiles reads the regular files of a manifest: path to hex
// sha256.
func ManifestFiles(m []byte) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range bytes.Split(m, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		p, rest, err := unquotePrefix(string(line))
		if err != nil {
			return nil, fmt.Errorf("manifest line %q: %w", line, err)
		}
		f := strings.Fields(rest)
		if len(f) == 3 && f[0] == "file" {
			out[p] = f[2]
		}
	}
	return out, nil
}

// unquotePrefix splits a line that starts with a Go-quoted string.
func unquotePrefix(line string) (string, string, error) {
	q, err := strconv.QuotedPrefix(line)
	if err != nil {
		return "", "", err
	}
	p, err := strconv.Unquote(q)
	return p, line[len(q):], err
}

// ErrMountPoint is the error for a file system mounted inside a tree
// RemoveAll removes: what is mounted there is never walked into.
var ErrMountPoint = errors.New("a file system is mounted here (left by a process that was killed?); unmount it first")
