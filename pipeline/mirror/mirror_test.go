package mirror

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{`{{mirror "debian"}}/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2`, "mirror://debian/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2", ""},
		{"https://example.com/x.tar.gz", "https://example.com/x.tar.gz", ""},
		{`{{mirror "Debian/../x"}}/p`, "", "mirror name"},
		{`{{.Version}}`, "", "Version"},
	} {
		got, err := Render(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Render(%q): %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Render(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestAptArchives reads both apt formats, skips comments and disabled
// entries, and names archives by their path.
func TestAptArchives(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "sources.list"), []byte("# deb http://commented.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://a.example/debian bookworm main\ndeb-src http://a.example/debian bookworm main\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sources.list.d", "x.sources"), []byte("Types: deb\n# http://snapshot.example/archive/debian/2025\nURIs: http://b.example/debian-security/\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://c.example/ubuntu\nEnabled: no\n\nTypes: deb\nURIs: http://d.example/mirror/debian\n"), 0o644)
	got := AptArchives(dir)
	want := map[string]string{"debian": "http://a.example/debian", "debian-security": "http://b.example/debian-security"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sources.list"), []byte("deb http://a.example/debian bookworm main\n"), 0o644)
	env := map[string]string{}
	s := &Set{AptDir: dir, Env: func(k string) string { return env[k] }}
	if got, err := s.Expand("mirror://debian/pool/x.tar.gz"); err != nil || got != "http://a.example/debian/pool/x.tar.gz" {
		t.Errorf("from apt: %q, %v", got, err)
	}
	env["COACH_MIRROR_DEBIAN"] = "file:///srv/mirror/debian/"
	if got, err := s.Expand("mirror://debian/pool/x.tar.gz"); err != nil || got != "file:///srv/mirror/debian/pool/x.tar.gz" {
		t.Errorf("from the environment: %q, %v", got, err)
	}
	if _, err := s.Expand("mirror://ubuntu/pool/x"); err == nil || !strings.Contains(err.Error(), "COACH_MIRROR_UBUNTU") {
		t.Errorf("unknown archive: %v", err)
	}
	if got, err := s.Expand("https://example.com/x"); err != nil || got != "https://example.com/x" {
		t.Errorf("plain URL: %q, %v", got, err)
	}
}
