package build

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
