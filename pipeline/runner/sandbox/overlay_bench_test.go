package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/target"
)

// BenchmarkEnvironment times what adding autoconf, automake and libtool
// to a component costs: an environment over the target's base root (made
// once, outside the timing) against a fresh root filesystem with them, as
// builds had before environments. The two alternate under -count.
//
//	go test ./pipeline/runner/sandbox -run '^$' -bench Environment -benchtime 1x -count 3
func BenchmarkEnvironment(b *testing.B) {
	for _, tool := range []string{"bwrap", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not installed", tool)
		}
	}
	tg, _ := target.Builtin("debian-12")
	arch := target.HostArch()
	pkgs := []string{"autoconf", "automake", "libtool"}
	ctx := context.Background()
	shared := &Rootfs{Dir: testroots.Dir()}
	base, err := shared.Ensure(ctx, tg, arch, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("environment over the base", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			// The base, as the environment's directory has it.
			if out, err := exec.Command("cp", "-a", "--link", "--", base, filepath.Join(dir, filepath.Base(base))).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			r := &Rootfs{Dir: dir}
			b.StartTimer()
			if _, err := r.environment(ctx, tg, arch, filepath.Join(dir, filepath.Base(base)), pkgs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh root with them", func(b *testing.B) {
		for b.Loop() {
			dir := b.TempDir()
			r := &Rootfs{Dir: dir}
			if _, err := r.ensure(ctx, tg, arch, pkgs, true); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			os.RemoveAll(dir)
			b.StartTimer()
		}
	})
}
