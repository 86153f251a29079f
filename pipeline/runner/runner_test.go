package runner

import (
	"testing"
	"time"
)

func TestStepTimeout(t *testing.T) {
	start := time.Unix(1000, 0)
	steps := []Step{{Name: "a"}, {Name: "b", Timeout: 10 * time.Second}}
	for _, tc := range []struct {
		name    string
		job     time.Duration
		step    int
		elapsed time.Duration
		want    time.Duration
		of      string
	}{
		{"none", 0, 0, 0, 0, "step"},
		{"the step's", 0, 1, 0, 10 * time.Second, "step"},
		{"the component's, when it ends first", 30 * time.Second, 1, 25 * time.Second, 5 * time.Second, "component"},
		{"the step's, when it ends first", 30 * time.Second, 1, 5 * time.Second, 10 * time.Second, "step"},
		{"the component's, on a step without one", 30 * time.Second, 0, 20 * time.Second, 10 * time.Second, "component"},
		{"the component's, already spent", 30 * time.Second, 0, 40 * time.Second, time.Millisecond, "component"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &Job{Steps: steps, Timeout: tc.job}
			d, of := j.StepTimeout(tc.step, start, start.Add(tc.elapsed))
			if d != tc.want || of != tc.of {
				t.Errorf("got %s of the %s, want %s of the %s", d, of, tc.want, tc.of)
			}
		})
	}
}
