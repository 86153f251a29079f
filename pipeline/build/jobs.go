package build

import (
	"cmp"
	"runtime"

	"github.com/coach-build/coach/pipeline/internal/jobserver"
	"github.com/coach-build/coach/pipeline/runner"
)

// SplitJobs picks how many components build at once and how many jobs
// each build's make gets, so that together they use the cores and do not
// exceed them: a number given is kept, a zero is derived from the other
// (cores / given), and with both zero the components get the square root
// of the cores and make the rest.
func SplitJobs(jobs, makeJobs, cores int) (int, int) {
	cores = max(cores, 1)
	switch {
	case jobs > 0 && makeJobs > 0:
	case jobs > 0:
		makeJobs = max(1, cores/jobs)
	case makeJobs > 0:
		jobs = max(1, cores/makeJobs)
	default:
		jobs = 1
		for (jobs+1)*(jobs+1) <= cores {
			jobs++
		}
		makeJobs = max(1, cores/jobs)
	}
	return jobs, makeJobs
}

// Parallelism is how a run's builds share the machine.
type Parallelism struct {
	// Jobs is how many components build at once, MakeJobs each build's
	// make -j (and {{.Jobs}}).
	Jobs, MakeJobs int
	// Jobserver, when not nil, hands out the cores' tokens to every make
	// of every build; the caller closes it.
	Jobserver *jobserver.Server
}

// Share splits cores (0: all of this machine's) between components and
// their makes. With a runner that shares a job server (unless
// noJobserver), every make shares the cores' tokens, so components and
// makes each default to all of them. On an engine that schedules the work
// itself (runner.TargetScheduler), whose containers cannot share the job
// server's pipe, they default to all of them too, without the shared
// limit: components that are ready start at once, and a lone one on the
// longest chain still gets every core (with 2 cores, 1 × 2 left one core
// idle whenever a build was serial, as configure is). Otherwise zeros are
// split as SplitJobs does.
func Share(r runner.Runner, jobs, makeJobs, cores int, noJobserver bool) (Parallelism, error) {
	if cores <= 0 {
		cores = runtime.NumCPU()
	}
	if _, engine := r.(runner.TargetScheduler); engine && jobs == 0 && makeJobs == 0 {
		return Parallelism{Jobs: cores, MakeJobs: cores}, nil
	}
	if !runner.SharesJobserver(r) || noJobserver {
		j, m := SplitJobs(jobs, makeJobs, cores)
		return Parallelism{Jobs: j, MakeJobs: m}, nil
	}
	js, err := jobserver.New(cores)
	if err != nil {
		return Parallelism{}, err
	}
	return Parallelism{Jobs: cmp.Or(jobs, cores), MakeJobs: cmp.Or(makeJobs, cores), Jobserver: js}, nil
}
