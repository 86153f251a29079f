package digest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestJSONIgnoresMapOrder(t *testing.T) {
	a := map[string]int{"a": 1, "b": 2, "c": 3}
	b := map[string]int{"c": 3, "b": 2, "a": 1}
	if JSON(a) != JSON(b) {
		t.Fatal("map order changed the digest")
	}
	if JSON(a) == JSON(map[string]int{"a": 1, "b": 2, "c": 4}) {
		t.Fatal("a changed value kept the digest")
	}
}

func writeTree(t *testing.T, dir string) {
	t.Helper()
	for name, body := range map[string]string{"a.c": "int a;", "sub/b.h": "#define B", "sub/deeper/c": "c"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.c", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

func TestTree(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	writeTree(t, d1)
	writeTree(t, d2)
	old := time.Unix(1e9, 0)
	if err := os.Chtimes(filepath.Join(d2, "a.c"), old, old); err != nil {
		t.Fatal(err)
	}
	t1, err := Tree(d1)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := Tree(d2)
	if err != nil {
		t.Fatal(err)
	}
	if t1 != t2 {
		t.Fatalf("same content, different digests: %s %s", t1, t2)
	}
	changes := map[string]func(dir string) error{
		"content":  func(d string) error { return os.WriteFile(filepath.Join(d, "a.c"), []byte("int b;"), 0o644) },
		"exec bit": func(d string) error { return os.Chmod(filepath.Join(d, "a.c"), 0o755) },
		"new file": func(d string) error { return os.WriteFile(filepath.Join(d, "new"), nil, 0o644) },
		"rename":   func(d string) error { return os.Rename(filepath.Join(d, "sub/b.h"), filepath.Join(d, "sub/c.h")) },
		"link target": func(d string) error {
			os.Remove(filepath.Join(d, "link"))
			return os.Symlink("sub/b.h", filepath.Join(d, "link"))
		},
		"empty dir": func(d string) error { return os.Mkdir(filepath.Join(d, "empty"), 0o755) },
	}
	for name, change := range changes {
		d := t.TempDir()
		writeTree(t, d)
		if err := change(d); err != nil {
			t.Fatal(err)
		}
		got, err := Tree(d)
		if err != nil {
			t.Fatal(err)
		}
		if got == t1 {
			t.Errorf("%s: digest did not change", name)
		}
	}
}
