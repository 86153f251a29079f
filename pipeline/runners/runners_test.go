package runners

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/runner/fake"
	"github.com/coach-build/coach/pipeline/target"
)

// engineRunner is a fake whose engine says which arches it runs.
type engineRunner struct {
	fake.Runner
	failed map[string]error
	asked  [][]string
}

func (r *engineRunner) Platforms(_ context.Context, arches []string) (string, map[string]error, error) {
	r.asked = append(r.asked, arches)
	return "linux/" + target.HostArch(), r.failed, nil
}

// TestCanRunAsksTheEngine: a foreign arch the engine cannot run is refused
// before anything builds, with the runner's fix; the machine's own arch does not
// cost a probe.
func TestCanRunAsksTheEngine(t *testing.T) {
	foreign := "arm64"
	if target.HostArch() == "arm64" {
		foreign = "amd64"
	}
	r := &engineRunner{failed: map[string]error{foreign: errors.New("a linux/" + foreign + " program did not run; register qemu-user's interpreters (apt-get install qemu-user-static) on the engine's host")}}
	err := CanRun(context.Background(), r, []string{target.HostArch(), foreign})
	var re *failure.RequestError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "qemu-user-static") || !strings.Contains(err.Error(), "did not run") {
		t.Fatalf("canRun = %v; want a request error with the fix", err)
	}
	r.asked = nil
	if err := CanRun(context.Background(), r, []string{target.HostArch()}); err != nil || len(r.asked) != 0 {
		t.Errorf("the host's arch: %v, probes %v", err, r.asked)
	}
	r.failed = map[string]error{}
	if err := CanRun(context.Background(), r, []string{foreign}); err != nil {
		t.Errorf("an engine that runs %s was refused: %v", foreign, err)
	}
}
