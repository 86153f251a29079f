package flow

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/fake"
	"github.com/coach-build/coach/pipeline/target"
)

func TestFailures(t *testing.T) {
	ok := &TargetResult{Target: "debian-12", Arch: target.HostArch()}
	bad := &TargetResult{Target: "el9", Arch: target.HostArch()}
	bad.fail(event.StageHealth, errors.New("health check of p for el9 failed"))
	if err := Failures("p", []*TargetResult{ok}); err != nil {
		t.Fatalf("all through: %v", err)
	}
	err := Failures("p", []*TargetResult{ok, bad})
	var te *TargetsError
	if !errors.As(err, &te) || te.OK != 1 || len(te.Failed) != 1 {
		t.Fatalf("err %v", err)
	}
	if failure.StageOf(err) != event.StageHealth {
		t.Errorf("stage %q, want the first failure's", failure.StageOf(err))
	}
	if !strings.Contains(err.Error(), "1 of 2 targets failed (the packages of the others were written)") {
		t.Errorf("message %q", err)
	}
	if err := Failures("p", []*TargetResult{bad}); err.Error() != bad.Error {
		t.Errorf("one failure alone: %q", err)
	}
}

// sysrooter is a runner whose root exists only after Prepare.
type sysrooter struct {
	fake.Runner
	prepared bool
	fail     bool
}

func (s *sysrooter) Prepare(ctx context.Context, t target.Target, arch string, packages []string) error {
	if s.fail {
		return errors.New("no mirror")
	}
	s.prepared = true
	return nil
}

func (s *sysrooter) Sysroot(t target.Target, arch string, packages []string) string {
	if !s.prepared {
		return ""
	}
	return "/roots/" + t.Name
}

// A build whose components all came from the cache made no root: the
// health check's sysroot is made then, not judged by name only.
func TestSysrootOfPreparesWhenMissing(t *testing.T) {
	tg := target.Target{Name: "debian-12"}
	r := &sysrooter{}
	if got := runner.SysrootOf(context.Background(), r, tg, "amd64", nil); got != "/roots/debian-12" || !r.prepared {
		t.Errorf("got %q, prepared %v", got, r.prepared)
	}
	if got := runner.SysrootOf(context.Background(), &sysrooter{fail: true}, tg, "amd64", nil); got != "" {
		t.Errorf("a root that cannot be made: %q", got)
	}
	if got := runner.SysrootOf(context.Background(), &fake.Runner{}, tg, "amd64", nil); got != "" {
		t.Errorf("a runner with no root on the host: %q", got)
	}
}
