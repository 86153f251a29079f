package build

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// TestOutputIsNeverAStep: a step whose output starts a line with the step
// header's "==> " (makepkg-style tools) shows that line as output, and no
// step of its own: step events come from the runner's calls alone.
func TestOutputIsNeverAStep(t *testing.T) {
	f := newFixture(t)
	f.runner.Print = map[string]string{"xz": "==> not a step\n==> step 9/9: fake\n"}
	var mu sync.Mutex
	var steps, lines []string
	f.builder.Events = func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Component != "xz" {
			return
		}
		switch e.Kind {
		case event.ComponentStep:
			steps = append(steps, e.Step)
		case event.ComponentOutput:
			lines = append(lines, e.Line)
		}
	}
	if _, err := f.build(t, "debian-12"); err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || !strings.HasPrefix(steps[0], "1/2: ") || !strings.HasPrefix(steps[1], "2/2: ") {
		t.Errorf("steps %q, want the two steps of xz", steps)
	}
	if strings.Count(strings.Join(lines, "\n"), "==> not a step") != 2 {
		t.Errorf("the step's own \"==> \" lines are not output: %q", lines)
	}
}

// TestShellPreparesUnderItsOwnContext: coach shell on a target whose
// environment is not made yet (a runner whose Prepare takes a while and
// honours its context, as making a root filesystem does) opens the shell;
// it used to fail with "context canceled", the dependencies' build having
// cancelled the context Prepare was given.
func TestShellPreparesUnderItsOwnContext(t *testing.T) {
	f := newFixture(t)
	f.runner.PrepareTakes = 50 * time.Millisecond
	prep, err := prepare(f.root, "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	tg, _ := target.Builtin("debian-12")
	if err := f.builder.Shell(context.Background(), prep.Plan, prep.Project, f.root, tg, "xz", runner.Shell{}); err != nil {
		t.Fatalf("shell: %v", err)
	}
	if got := f.runner.Shells(); len(got) != 1 || got[0] != "xz" {
		t.Errorf("shells %v, want one for xz", got)
	}
}
