package build

import (
	"testing"

	"github.com/coach-build/coach/pipeline/runner/fake"
)

func TestSplitJobs(t *testing.T) {
	for _, c := range []struct{ jobs, makeJobs, cores, wantJobs, wantMake int }{
		{0, 0, 1, 1, 1},
		{0, 0, 2, 1, 2},
		{0, 0, 4, 2, 2},
		{0, 0, 8, 2, 4},
		{0, 0, 16, 4, 4},
		{0, 0, 64, 8, 8},
		{4, 0, 16, 4, 4},
		{3, 0, 2, 3, 1},
		{0, 8, 16, 2, 8},
		{2, 2, 2, 2, 2}, // both given: kept
	} {
		j, m := SplitJobs(c.jobs, c.makeJobs, c.cores)
		if j != c.wantJobs || m != c.wantMake {
			t.Errorf("SplitJobs(%d, %d, %d) = %d, %d; want %d, %d", c.jobs, c.makeJobs, c.cores, j, m, c.wantJobs, c.wantMake)
		}
		if c.jobs == 0 && c.makeJobs == 0 && j*m > c.cores {
			t.Errorf("defaults on %d cores exceed them: %d × %d", c.cores, j, m)
		}
	}
}

// engine is a runner that schedules its work itself, as Dagger does.
type engine struct{ *fake.Runner }

func (engine) SchedulesTargets() {}

// TestShareOnAnEngine: on an engine (no job server to share), components
// and makes each default to all the cores, so that ready components start
// at once; numbers given are split as without a job server.
func TestShareOnAnEngine(t *testing.T) {
	for _, c := range []struct{ jobs, makeJobs, cores, wantJobs, wantMake int }{
		{0, 0, 2, 2, 2},
		{0, 0, 16, 16, 16},
		{1, 0, 2, 1, 2},
		{0, 1, 4, 4, 1},
	} {
		p, err := Share(engine{&fake.Runner{}}, c.jobs, c.makeJobs, c.cores, false)
		if err != nil || p.Jobs != c.wantJobs || p.MakeJobs != c.wantMake || p.Jobserver != nil {
			t.Errorf("Share(engine, %d, %d, %d) = %+v, %v; want %d × %d", c.jobs, c.makeJobs, c.cores, p, err, c.wantJobs, c.wantMake)
		}
	}
	// Without the engine, the same zeros are split.
	if p, _ := Share(&fake.Runner{}, 0, 0, 2, true); p.Jobs != 1 || p.MakeJobs != 2 {
		t.Errorf("without an engine: %+v", p)
	}
}
