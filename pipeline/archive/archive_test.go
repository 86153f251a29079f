package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 1, 22, 10, 0, 0, 0, time.UTC)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode, ModTime: mtime, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func makeZip(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch {
		case e.link != "":
			h.SetMode(fs.ModeSymlink | 0o777)
		case e.typ == tar.TypeChar:
			h.SetMode(fs.ModeDevice | fs.ModeCharDevice | 0o644)
		default:
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if e.link != "" {
			w.Write([]byte(e.link))
		} else {
			w.Write([]byte(e.body))
		}
	}
	zw.Close()
	return buf.Bytes()
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMaliciousArchivesAreRejected extracts each hostile archive into
// outer/inner/dst and proves that it fails with an UnsafeError and that
// nothing at all was written: not outside, and not a partial dst either.
func TestMaliciousArchivesAreRejected(t *testing.T) {
	escape := "coach-escape-" + filepath.Base(t.TempDir())
	abs := filepath.Join(os.TempDir(), escape)
	cases := map[string][]byte{
		"zip-slip tar":           makeTar(t, []entry{{name: "pkg/ok.c", body: "ok"}, {name: "pkg/../../evil", body: "x"}}),
		"dot-dot at the start":   makeTar(t, []entry{{name: "../evil", body: "x"}}),
		"absolute path":          makeTar(t, []entry{{name: abs, body: "x"}}),
		"symlink escape":         makeTar(t, []entry{{name: "pkg/", typ: tar.TypeDir}, {name: "pkg/up", typ: tar.TypeSymlink, link: "../../.."}}),
		"symlink absolute":       makeTar(t, []entry{{name: "etc", typ: tar.TypeSymlink, link: "/etc"}}),
		"write through symlink":  makeTar(t, []entry{{name: "sub/", typ: tar.TypeDir}, {name: "s", typ: tar.TypeSymlink, link: "sub"}, {name: "s/file", body: "x"}}),
		"symlink dot then climb": makeTar(t, []entry{{name: "d", typ: tar.TypeSymlink, link: "."}, {name: "d/s", typ: tar.TypeSymlink, link: "../" + escape}}),
		"hardlink escape":        makeTar(t, []entry{{name: "pkg/passwd", typ: tar.TypeLink, link: "../../../../../../etc/passwd"}}),
		"hardlink absolute":      makeTar(t, []entry{{name: "pkg/passwd", typ: tar.TypeLink, link: "/etc/passwd"}}),
		"hardlink to symlink":    makeTar(t, []entry{{name: "l", typ: tar.TypeSymlink, link: "x"}, {name: "h", typ: tar.TypeLink, link: "l"}}),
		"char device":            makeTar(t, []entry{{name: "pkg/null", typ: tar.TypeChar}}),
		"block device":           makeTar(t, []entry{{name: "pkg/sda", typ: tar.TypeBlock}}),
		"fifo":                   makeTar(t, []entry{{name: "pkg/fifo", typ: tar.TypeFifo}}),
		"zip slip":               makeZip(t, []entry{{name: "../../evil", body: "x"}}),
		"zip backslash slip":     makeZip(t, []entry{{name: "..\\..\\evil", body: "x"}}),
		"zip absolute":           makeZip(t, []entry{{name: abs, body: "x"}}),
		"zip symlink escape":     makeZip(t, []entry{{name: "up", link: "../../.."}}),
		"zip device":             makeZip(t, []entry{{name: "null", typ: tar.TypeChar}}),
		// Chains that stay inside by path.Join but leave in the kernel:
		// up resolves to a, and a/../.. is above the destination.
		"symlink chain": makeTar(t, []entry{{name: "a/b/c/", typ: tar.TypeDir}, {name: "a/b/c/up", typ: tar.TypeSymlink, link: "../.."},
			{name: "X", typ: tar.TypeSymlink, link: "a/b/c/up/../../" + escape}}),
		"symlink chain to a parent": makeTar(t, []entry{{name: "a/b/", typ: tar.TypeDir}, {name: "a/b/up", typ: tar.TypeSymlink, link: ".."},
			{name: ".coach-patches", typ: tar.TypeSymlink, link: "a/b/up/../.."}}),
		// The link is made before the names it passes through exist.
		"symlink chain made later": makeTar(t, []entry{{name: "X", typ: tar.TypeSymlink, link: "a/b/c/d/../../../../" + escape},
			{name: "a/b/c/", typ: tar.TypeDir}, {name: "a/b/c/d", typ: tar.TypeSymlink, link: "../.."}}),
		"zip symlink chain": makeZip(t, []entry{{name: "a/b/c/up", link: "../.."}, {name: "X", link: "a/b/c/up/../../../etc"}}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			outer := t.TempDir()
			src := writeFile(t, t.TempDir(), "evil.tar", data)
			dst := filepath.Join(outer, "inner", "dst")
			_, err := Extract(src, dst, "evil.tar", DefaultLimits)
			var ue *UnsafeError
			if !errors.As(err, &ue) {
				t.Fatalf("want an UnsafeError, got %v", err)
			}
			var left []string
			filepath.WalkDir(outer, func(p string, d fs.DirEntry, err error) error {
				if p != outer && p != filepath.Join(outer, "inner") {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			if _, err := os.Lstat(abs); err == nil {
				os.Remove(abs)
				t.Errorf("wrote %s", abs)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	data := makeTar(t, []entry{{name: "a", body: strings.Repeat("x", 1000)}, {name: "b", body: strings.Repeat("y", 1000)}})
	src := writeFile(t, t.TempDir(), "bomb.tar", data)
	_, err := Extract(src, filepath.Join(t.TempDir(), "d"), "bomb.tar", Limits{MaxBytes: 1500, MaxEntries: 10})
	if err == nil || !strings.Contains(err.Error(), "more than 1500 bytes") {
		t.Errorf("byte limit: %v", err)
	}
	_, err = Extract(src, filepath.Join(t.TempDir(), "d"), "bomb.tar", Limits{MaxBytes: 1 << 20, MaxEntries: 1})
	if err == nil || !strings.Contains(err.Error(), "more than 1 entries") {
		t.Errorf("entry limit: %v", err)
	}
}

var good = []entry{
	{name: "zlib-1.3.1/", typ: tar.TypeDir},
	{name: "zlib-1.3.1/configure", body: "#!/bin/sh\necho configured\n", mode: 0o755},
	{name: "zlib-1.3.1/zlib.h", body: "#define ZLIB_VERSION \"1.3.1\"\n"},
	{name: "zlib-1.3.1/empty/", typ: tar.TypeDir, mode: 0o750},
	{name: "zlib-1.3.1/doc/", typ: tar.TypeDir},
	{name: "zlib-1.3.1/doc/README", body: "read me\n"},
	{name: "zlib-1.3.1/README", typ: tar.TypeSymlink, link: "doc/README"},
	{name: "zlib-1.3.1/zconf.h", typ: tar.TypeLink, link: "zlib-1.3.1/zlib.h"},
}

func compress(t *testing.T, format Format, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch format {
	case TarGzip:
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case TarXz:
		w, _ := xz.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case TarZstd:
		w, _ := zstd.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case TarBz2:
		if _, err := exec.LookPath("bzip2"); err != nil {
			t.Skip("bzip2 is not installed: go's compress/bzip2 only decompresses")
		}
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	default:
		return data
	}
	return buf.Bytes()
}

func TestExtractFormats(t *testing.T) {
	plain := makeTar(t, good)
	for _, format := range []Format{Tar, TarGzip, TarBz2, TarXz, TarZstd} {
		t.Run(string(format), func(t *testing.T) {
			src := writeFile(t, t.TempDir(), "zlib-1.3.1."+string(format), compress(t, format, plain))
			dst := filepath.Join(t.TempDir(), "src")
			res, err := Extract(src, dst, filepath.Base(src), DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != format || res.TopDir != "zlib-1.3.1" || res.Entries != len(good) {
				t.Errorf("result = %+v", res)
			}
			checkTree(t, filepath.Join(dst, "zlib-1.3.1"))
		})
	}
}

func checkTree(t *testing.T, root string) {
	t.Helper()
	st, err := os.Stat(filepath.Join(root, "configure"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("configure: %v %v", st.Mode(), err)
	}
	if want := time.Date(2024, 1, 22, 10, 0, 0, 0, time.UTC); !st.ModTime().Equal(want) {
		t.Errorf("mtime = %v, want %v", st.ModTime(), want)
	}
	if link, err := os.Readlink(filepath.Join(root, "README")); err != nil || link != "doc/README" {
		t.Errorf("symlink: %q %v", link, err)
	}
	a, _ := os.Stat(filepath.Join(root, "zlib.h"))
	b, _ := os.Stat(filepath.Join(root, "zconf.h"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("hard link not kept")
	}
	if st, err := os.Stat(filepath.Join(root, "empty")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750 {
		t.Errorf("empty dir: %v", err)
	}
}

func TestExtractZip(t *testing.T) {
	data := makeZip(t, []entry{{name: "pkg/a.txt", body: "a"}, {name: "pkg/sub/", body: ""}, {name: "pkg/link", link: "a.txt"}})
	src := writeFile(t, t.TempDir(), "pkg.zip", data)
	dst := filepath.Join(t.TempDir(), "src")
	res, err := Extract(src, dst, "pkg.zip", DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != Zip || res.TopDir != "pkg" {
		t.Errorf("result = %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "pkg/link")); string(b) != "a" {
		t.Errorf("through the symlink: %q", b)
	}
}

func TestExtractPlainAndSingleFile(t *testing.T) {
	src := writeFile(t, t.TempDir(), "install.sh", []byte("#!/bin/sh\n"))
	dst := filepath.Join(t.TempDir(), "src")
	res, err := Extract(src, dst, "install.sh", DefaultLimits)
	if err != nil || res.Format != Plain {
		t.Fatalf("%+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "install.sh")); string(b) != "#!/bin/sh\n" {
		t.Errorf("plain copy = %q", b)
	}
	gz := compress(t, TarGzip, []byte("data\n"))
	src = writeFile(t, t.TempDir(), "data.txt.gz", gz)
	dst = filepath.Join(t.TempDir(), "src")
	if res, err := Extract(src, dst, "data.txt.gz", DefaultLimits); err != nil || res.Format != Gzip {
		t.Fatalf("%+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "data.txt")); string(b) != "data\n" {
		t.Errorf("gunzipped = %q", b)
	}
}

func TestExtractRefusesExistingDestination(t *testing.T) {
	src := writeFile(t, t.TempDir(), "a.tar", makeTar(t, good))
	dst := t.TempDir()
	if _, err := Extract(src, dst, "a.tar", DefaultLimits); err == nil {
		t.Fatal("extracted over an existing directory")
	}
}
