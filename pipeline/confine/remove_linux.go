//go:build linux

package confine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// RemoveAll removes rel beneath base and everything in it, following no
// symlink on the way or inside: every component of rel is resolved by
// the kernel with RESOLVE_NO_SYMLINKS beneath base (a symlink there is an
// error), a symlink at rel itself is removed as a link, and the tree is
// walked by descriptors opened with O_NOFOLLOW. The walk never crosses a
// mount point (RESOLVE_NO_XDEV): a directory mounted inside the tree, such
// as the /proc or /dev a killed bootstrap left mounted in a root it was
// making, is an error, and what is mounted there is left alone. base
// itself (the cache directory a user named) is followed. Directories the walk cannot read
// or write are made 0700 first. It stops, returning ctx's error, when ctx
// ends. A missing rel is not an error.
func RemoveAll(ctx context.Context, base, rel string) error {
	b, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "open", Path: base, Err: err}
	}
	defer unix.Close(b)
	rel = filepath.Clean(rel)
	if rel == "." || filepath.IsAbs(rel) {
		return &os.PathError{Op: "remove", Path: filepath.Join(base, rel), Err: errors.New("not a path beneath the directory")}
	}
	dir, name := filepath.Split(rel)
	parent := b
	if dir != "" {
		parent, err = unix.Openat2(b, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			if errors.Is(err, unix.ELOOP) {
				return &os.PathError{Op: "remove", Path: filepath.Join(base, rel), Err: errors.New("a component of the path is a symlink")}
			}
			return &os.PathError{Op: "open", Path: filepath.Join(base, dir), Err: err}
		}
		defer unix.Close(parent)
	}
	return removeAt(ctx, parent, name, filepath.Join(base, rel))
}

// removeAt removes name in the directory dirfd, recursively.
func removeAt(ctx context.Context, dirfd int, name, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := unix.Unlinkat(dirfd, name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		return &os.PathError{Op: "remove", Path: path, Err: ErrMountPoint}
	case !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM):
		return &os.PathError{Op: "unlink", Path: path, Err: err}
	}
	// A directory (never a link: O_NOFOLLOW), made listable and writable.
	p, err := unix.Openat2(dirfd, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EXDEV):
			return &os.PathError{Op: "remove", Path: path, Err: ErrMountPoint}
		}
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(p, &st); err == nil && st.Mode&0o700 != 0o700 {
		unix.Chmod("/proc/self/fd/"+strconv.Itoa(p), 0o700)
	}
	fd, err := unix.Openat(p, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	unix.Close(p)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return &os.PathError{Op: "readdir", Path: path, Err: err}
	}
	for _, n := range names {
		if err := removeAt(ctx, fd, n, filepath.Join(path, n)); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}
