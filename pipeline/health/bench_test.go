package health

import (
	"os/exec"
	"runtime"
	"testing"

	"github.com/coach-build/coach/pipeline/target"
)

// BenchmarkVersusOmnibus checks this host's /usr/lib/x86_64-linux-gnu with
// coach and with Omnibus's pipeline (find, file, grep ELF, ldd on each),
// side by side, so the ratio comes from one run:
//
//	go test ./pipeline/health -run '^$' -bench VersusOmnibus -benchtime 1x -count 5
func BenchmarkVersusOmnibus(b *testing.B) {
	const dir = "/usr/lib/x86_64-linux-gnu"
	if runtime.GOARCH != "amd64" {
		b.Skip("uses the x86_64 library directory")
	}
	tg, _ := target.Builtin("debian-12")
	b.Run("coach", func(b *testing.B) {
		for b.Loop() {
			if _, err := Check(Options{Tree: dir, InstallDir: dir, Sysroot: "/", Target: tg, Arch: "amd64"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("omnibus", func(b *testing.B) {
		for _, tool := range []string{"file", "ldd"} {
			if _, err := exec.LookPath(tool); err != nil {
				b.Skip(tool + " is not installed")
			}
		}
		for b.Loop() {
			// Omnibus's health check: every file, file(1) on each, ldd on
			// the ELF ones (lib/omnibus/health_check.rb, health_check_ldd).
			cmd := exec.Command("bash", "-c", `find "$0" -type f | xargs file | grep ELF | cut -d: -f1 | xargs ldd > /dev/null 2>&1; true`, dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}
