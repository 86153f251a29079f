package cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/runner/sandbox"
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
	// An environment over that base: its linked files are the base's, its
	// own (and the downloaded .debs) are the environment's.
	os.MkdirAll(filepath.Join(cache, "roots/debian-12-env-def/usr/bin"), 0o755)
	os.Link(filepath.Join(cache, "roots/debian-12-abc/usr/bin/sh"), filepath.Join(cache, "roots/debian-12-env-def/usr/bin/sh"))
	write(filepath.Join(cache, "roots/debian-12-env-def/usr/bin/autoconf"), 64<<10)
	write(filepath.Join(cache, "roots/apt-archives/bookworm-amd64/autoconf.deb"), 32<<10)
	os.WriteFile(filepath.Join(cache, "roots/debian-12-env-def.lock"), nil, 0o644)
	write(filepath.Join(cache, "libraries/0123456789abcdef0123456789abcdef01234567/software/zlib.yaml"), 8<<10)
	use, err := New(cache).Usage()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Use{}
	for _, u := range use {
		got[u.Kind] = u
	}
	if len(use) != 8 {
		t.Fatalf("kinds: %+v", use)
	}
	if l := got["software libraries"]; l.Entries != 1 || l.Bytes < 8<<10 {
		t.Errorf("software libraries: %+v", l)
	}
	if b := got["sources"].Bytes; b < 1<<20 {
		t.Errorf("sources %d bytes", b)
	}
	if l, w := got["layers"].Bytes, got["work trees"].Bytes; l < 512<<10 || w >= 512<<10 {
		t.Errorf("the hard-linked file: layers %d, work trees %d bytes (counted twice?)", l, w)
	}
	if r := got["root filesystems"]; r.Bytes < 256<<10 || r.Bytes >= 320<<10 || r.Entries != 1 {
		t.Errorf("root filesystems: %+v", r)
	}
	if e := got["build environments"]; e.Bytes < 96<<10 || e.Bytes >= 256<<10 || e.Entries != 2 {
		t.Errorf("build environments (their own bytes, the base's counted once): %+v", e)
	}
}

// TestEnvironmentsSaysWhatWasMade: doctor's line names each root and
// environment with the time it took, and leaves clean and half-made roots
// out.
func TestEnvironmentsSaysWhatWasMade(t *testing.T) {
	dir := t.TempDir()
	if got := Environments(dir); !strings.Contains(got, "yet") {
		t.Errorf("empty: %s", got)
	}
	info := func(name, body string) {
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		os.WriteFile(filepath.Join(dir, name, sandbox.InfoFile), []byte(body), 0o644)
	}
	info("debian-12-aaaa", `{"target":"debian-12","arch":"amd64","seconds":31.2}`)
	info("debian-12-env-bbbb", `{"target":"debian-12","arch":"amd64","packages":["autoconf","libtool"],"seconds":3.54}`)
	info("debian-12-clean-cccc", `{"target":"debian-12","arch":"amd64","seconds":20}`)
	info("debian-12-env-dddd.partial-1", `{"target":"debian-12","arch":"amd64","seconds":1}`)
	got := Environments(dir)
	for _, want := range []string{"1 root filesystems", "debian-12 amd64 (31 s)", "1 build environments over them: debian-12 amd64 + autoconf libtool (3.5 s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}
