package cache

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCacheUsage counts a file hard-linked from a work tree into a layer
// once, in the kind that reaches it first, and every kind is listed.
func TestCacheUsage(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("COACH_ROOTFS_DIR", filepath.Join(cache, "roots"))
	write := func(p string, n int) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, make([]byte, n), 0o644)
	}
	write(filepath.Join(cache, "sources/aa/zlib.tar.gz"), 1<<20)
	write(filepath.Join(cache, "layers/k1/tree/lib/libz.so"), 512<<10)
	os.MkdirAll(filepath.Join(cache, "work/app/debian-12/tree/lib"), 0o755)
	if err := os.Link(filepath.Join(cache, "layers/k1/tree/lib/libz.so"), filepath.Join(cache, "work/app/debian-12/tree/lib/libz.so")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(cache, "roots/debian-12-abc/usr/bin/sh"), 256<<10)
	use, err := New(cache).Usage()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Use{}
	for _, u := range use {
		got[u.Kind] = u
	}
	if len(use) != 6 {
		t.Fatalf("kinds: %+v", use)
	}
	if b := got["sources"].Bytes; b < 1<<20 {
		t.Errorf("sources %d bytes", b)
	}
	if l, w := got["layers"].Bytes, got["work trees"].Bytes; l < 512<<10 || w >= 512<<10 {
		t.Errorf("the hard-linked file: layers %d, work trees %d bytes (counted twice?)", l, w)
	}
	if r := got["root filesystems"]; r.Bytes < 256<<10 || r.Entries != 1 {
		t.Errorf("root filesystems: %+v", r)
	}
}
