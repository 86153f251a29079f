package pkg

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

var (
	benchTreeOnce sync.Once
	benchTree     string
)

// makeBenchTree writes a tree of about 200 MB in 2,500 files, half of them
// text-like (compressible) and half random, in 50 directories.
func makeBenchTree(b *testing.B) string {
	benchTreeOnce.Do(func() {
		dir, err := os.MkdirTemp("/var/tmp", "coach-bench-tree-")
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		words := strings.Fields("the quick brown fox jumps over the lazy dog while omnibus packages ship everything above libc")
		for i := range 2500 {
			d := filepath.Join(dir, fmt.Sprintf("d%02d", i%50))
			os.MkdirAll(d, 0o755)
			buf := make([]byte, 80<<10)
			if i%2 == 0 {
				for j := range buf {
					buf[j] = byte(r.UintN(256))
				}
			} else {
				var sb strings.Builder
				for sb.Len() < len(buf) {
					sb.WriteString(words[r.IntN(len(words))])
					sb.WriteByte(' ')
				}
				copy(buf, sb.String())
			}
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		benchTree = dir
	})
	return benchTree
}

// TestBenchHelper is not a test: BenchmarkPackage200MB runs it in a child
// process to package once, so the child's peak RSS is the packager's.
func TestBenchHelper(t *testing.T) {
	spec_ := os.Getenv("COACH_PKG_BENCH")
	if spec_ == "" {
		t.Skip("helper for BenchmarkPackage200MB")
	}
	format, comp, _ := strings.Cut(spec_, ":")
	name := "debian-12"
	if format == "rpm" {
		name = "el9"
	}
	tg, _ := target.Builtin(name)
	tg.Compression = comp
	f := false
	p := &spec.Project{Name: "bench", Description: "benchmark", Maintainer: "M <m@example.com>", License: "MIT", Version: "1.0.0", Iteration: 1, InstallDir: "/opt/bench",
		Package: spec.Package{Strip: &f}}
	_, err := Package(Options{Project: p, Target: tg, Arch: "amd64", Tree: os.Getenv("COACH_PKG_TREE"), MTime: epoch, OutDir: os.Getenv("COACH_PKG_OUT")})
	if err != nil {
		t.Fatal(err)
	}
}

// measure runs a command and returns its wall time and peak RSS in MiB.
func measure(b *testing.B, cmd *exec.Cmd) (time.Duration, float64) {
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Since(start), float64(ru.Maxrss) / 1024
}

// BenchmarkPackage200MB packages a generated 200 MB tree with coach (nfpm)
// and with dpkg-deb at the same compression, each in a child process, and
// reports wall time, peak RSS and the package size:
//
//	go test ./pipeline/pkg -run '^$' -bench Package200MB -benchtime 1x -count 3
func BenchmarkPackage200MB(b *testing.B) {
	tree := makeBenchTree(b)
	for _, c := range []string{"deb:gzip", "deb:zstd", "deb:xz", "rpm:gzip", "rpm:zstd"} {
		format, comp, _ := strings.Cut(c, ":")
		b.Run("coach-"+format+"-"+comp, func(b *testing.B) {
			for b.Loop() {
				out := b.TempDir()
				cmd := exec.Command(os.Args[0], "-test.run=^TestBenchHelper$")
				cmd.Env = append(os.Environ(), "COACH_PKG_BENCH="+c, "COACH_PKG_TREE="+tree, "COACH_PKG_OUT="+out)
				d, rss := measure(b, cmd)
				b.ReportMetric(rss, "peak-MiB")
				b.ReportMetric(d.Seconds(), "s")
				b.ReportMetric(dirMiB(out), "pkg-MiB")
			}
		})
		if format != "deb" {
			continue
		}
		b.Run("dpkg-deb-"+comp, func(b *testing.B) {
			if _, err := exec.LookPath("dpkg-deb"); err != nil {
				b.Skip("dpkg-deb is not installed")
			}
			stage := b.TempDir()
			os.MkdirAll(filepath.Join(stage, "DEBIAN"), 0o755)
			os.WriteFile(filepath.Join(stage, "DEBIAN/control"), []byte("Package: bench\nVersion: 1.0.0-1\nArchitecture: amd64\nMaintainer: M <m@example.com>\nDescription: benchmark\n"), 0o644)
			os.MkdirAll(filepath.Join(stage, "opt"), 0o755)
			if err := exec.Command("cp", "-a", tree, filepath.Join(stage, "opt/bench")).Run(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				out := filepath.Join(b.TempDir(), "bench.deb")
				d, rss := measure(b, exec.Command("dpkg-deb", "-Z"+comp, "--root-owner-group", "-b", stage, out))
				b.ReportMetric(rss, "peak-MiB")
				b.ReportMetric(d.Seconds(), "s")
				b.ReportMetric(dirMiB(filepath.Dir(out)), "pkg-MiB")
			}
		})
	}
}

func dirMiB(dir string) float64 {
	var n int64
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return float64(n) / (1 << 20)
}
