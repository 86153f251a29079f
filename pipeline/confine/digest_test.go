package confine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTreeDigest(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib/libz.so.1"), []byte("z"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "lib/evil"))
	sum := func() string {
		t.Helper()
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		d, err := TreeDigest(r)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := sum()
	os.Chtimes(filepath.Join(dir, "lib/libz.so.1"), time.Unix(1, 0), time.Unix(1, 0))
	if sum() != base {
		t.Error("a new mtime changed the digest")
	}
	for _, c := range []struct {
		what string
		do   func()
	}{
		{"mode", func() { os.Chmod(filepath.Join(dir, "lib/libz.so.1"), 0o600) }},
		{"content", func() { os.WriteFile(filepath.Join(dir, "lib/libz.so.1"), []byte("y"), 0o600) }},
		{"link target", func() {
			os.Remove(filepath.Join(dir, "lib/evil"))
			os.Symlink("/etc/shadow", filepath.Join(dir, "lib/evil"))
		}},
		{"new file", func() { os.WriteFile(filepath.Join(dir, "new"), nil, 0o644) }},
	} {
		before := sum()
		c.do()
		if sum() == before {
			t.Errorf("changing the %s left the digest as it was", c.what)
		}
	}
}
