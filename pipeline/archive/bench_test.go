package archive

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/coach-build/coach/pipeline/internal/testroots"
)

// BenchmarkExtractCurl unpacks curl's Debian orig tarball with coach and
// with tar, side by side, so their ratio can be read from one run:
//
//	.ci/fetch-debian-sources /var/tmp/coach-debian-sources curl
//	COACH_DEBIAN_SOURCES=/var/tmp/coach-debian-sources \
//	  go test ./pipeline/archive -run '^$' -bench ExtractCurl -count 10
func BenchmarkExtractCurl(b *testing.B) {
	dir := testroots.DebianSources(b)
	matches, _ := filepath.Glob(filepath.Join(dir, "curl_*.orig.tar.*"))
	var src string
	for _, m := range matches {
		if filepath.Ext(m) != ".asc" {
			src = m
		}
	}
	if src == "" {
		b.Skip("no curl orig tarball in " + dir)
	}
	st, _ := os.Stat(src)
	b.Run("coach", func(b *testing.B) {
		b.SetBytes(st.Size())
		for b.Loop() {
			dst := filepath.Join(b.TempDir(), "x")
			if _, err := Extract(src, dst, filepath.Base(src), DefaultLimits); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tar", func(b *testing.B) {
		if _, err := exec.LookPath("tar"); err != nil {
			b.Skip("tar is not installed")
		}
		b.SetBytes(st.Size())
		for b.Loop() {
			dst := b.TempDir()
			if out, err := exec.Command("tar", "-xf", src, "-C", dst).CombinedOutput(); err != nil {
				b.Fatalf("tar: %v: %s", err, out)
			}
		}
	})
}
