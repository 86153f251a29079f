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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// CopyFile copies the regular file srcRel beneath src to a new file dstRel
// beneath dst with exactly mode perm, making dstRel's parents. srcRel may
// pass through symlinks that stay beneath src; dstRel is never replaced, so
// a symlink planted at dstRel is not written through.
func CopyFile(src *os.Root, srcRel string, dst *os.Root, dstRel string, perm fs.FileMode) error {
	in, err := src.Open(srcRel)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", srcRel)
	}
	if dir := filepath.Dir(dstRel); dir != "." {
		if err := dst.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return writeNew(dst, dstRel, perm, in)
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
// outside.
func TreeDigest(root *os.Root) (string, error) {
	h := sha256.New()
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
			fmt.Fprintf(h, "%q link %q\n", p, dest)
		case info.IsDir():
			fmt.Fprintf(h, "%q dir %o\n", p, perm)
		case info.Mode().IsRegular():
			f, err := root.Open(p)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%q file %o %x\n", p, perm, fh.Sum(nil))
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, info.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
