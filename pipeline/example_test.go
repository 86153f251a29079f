package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/runners"
)

// Where the example works; TestExampleRun points them at temporary
// directories. A program would leave CacheDir and OutDir empty (the user's
// cache, and pkg/ in the repository).
var (
	exampleRoot  = ".."
	exampleCache = ""
	exampleOut   = ""
)

// A program that builds the hello project for debian-12 in the sandbox,
// follows its components as they are built, and reads the packages it
// wrote.
func ExampleRun() {
	res, err := pipeline.Run(context.Background(), pipeline.BuildRequest{
		Root:       exampleRoot,
		Project:    "hello",
		Targets:    []string{"debian-12"},
		RunnerName: runners.Sandbox,
		CacheDir:   exampleCache,
		OutDir:     exampleOut,
		NoVerify:   true,
		Events: func(e event.Event) {
			switch e.Kind {
			case event.ComponentFinished, event.ComponentCached:
				fmt.Println(e.Target, e.Component, "ready")
			case event.StageFinished:
				if e.Stage == event.StageHealth {
					fmt.Println(e.Target, "health:", e.Message)
				}
			}
		},
	})
	if err != nil {
		fmt.Println("build failed at", failure.StageOf(err)+":", err)
		return
	}
	for _, p := range res.Packages() {
		fmt.Println(p.Target, p.Format, p.File)
	}
	for _, t := range res.Targets {
		fmt.Println(t.Target, "needs", strings.Join(t.Health.Dependencies, ", "))
	}
}

// TestExampleRun runs the example for real and checks what it printed.
func TestExampleRun(t *testing.T) {
	for _, tool := range []string{"bwrap", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it): the example builds in the sandbox", tool)
		}
	}
	t.Setenv("COACH_ROOTFS_DIR", testroots.Dir())
	exampleCache, exampleOut = t.TempDir(), t.TempDir()
	got := captureStdout(t, ExampleRun)
	want := `debian-12 libgreet ready
debian-12 hello ready
debian-12 health: 2 ELF files, 0 warnings
debian-12 deb hello_1.2.0-1+deb12_amd64.deb
debian-12 needs libc6 (>= 2.34)
`
	if got != want {
		t.Errorf("the example printed:\n%s\nwant:\n%s", got, want)
	}
	// The report in the release says how long the build took.
	data, err := os.ReadFile(filepath.Join(exampleOut, "hello-1.2.0-1", "build-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Build struct {
			Seconds float64 `json:"seconds"`
		} `json:"build"`
	}
	if err := json.Unmarshal(data, &report); err != nil || report.Build.Seconds <= 0 {
		t.Errorf("build-report.json has build.seconds %v (%v)", report.Build.Seconds, err)
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, r)
		done <- b.String()
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	os.Stdout = old
	return <-done
}
