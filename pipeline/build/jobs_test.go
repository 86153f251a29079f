package build

import "testing"

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
