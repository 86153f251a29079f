// Package digest computes the content hashes coach keys everything by:
// canonical JSON of typed values, files, and directory trees.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Prefix marks every digest with its algorithm.
const Prefix = "sha256:"

// JSON returns the sha256 of v's JSON encoding. encoding/json writes struct
// fields in declaration order and map keys sorted, so the encoding, and the
// digest, depend only on v's value, not on how a YAML file spelled it.
func JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("digest: %T cannot be encoded: %v", v, err))
	}
	return Bytes(b)
}

// Bytes returns the prefixed sha256 of b.
func Bytes(b []byte) string {
	sum := sha256.Sum256(b)
	return Prefix + hex.EncodeToString(sum[:])
}

// File returns the prefixed sha256 of a file's content.
func File(path string) (string, error) {
	sum, err := FileHex(path, sha256.New())
	if err != nil {
		return "", err
	}
	return Prefix + sum, nil
}

// FileHex returns the hex digest of a file's content with h (a new hash),
// for the digests others define: an object store's MD5 ETag.
func FileHex(path string, h hash.Hash) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Tree returns a digest of a directory tree that depends on each entry's
// relative path, type, executable bit, file content and symlink target, and
// on nothing else (not mtimes, owners or the order the filesystem lists
// entries in). A single file is hashed as a tree of one entry.
func Tree(root string) (string, error) {
	type entry struct{ path, line string }
	var entries []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			dest, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entries = append(entries, entry{rel, "link " + dest})
		case d.IsDir():
			entries = append(entries, entry{rel, "dir"})
		case info.Mode().IsRegular():
			sum, err := File(p)
			if err != nil {
				return err
			}
			exec := info.Mode().Perm()&0o111 != 0
			entries = append(entries, entry{rel, fmt.Sprintf("file %t %s", exec, sum)})
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, info.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%q %s\n", e.path, e.line)
	}
	return Prefix + hex.EncodeToString(h.Sum(nil)), nil
}
