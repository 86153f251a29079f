package plan

import (
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/internal/synthetic"

	"github.com/coach-build/coach/pipeline/target"
)

// syntheticSpecs returns a random DAG of n components, each depending on up to
// four earlier ones, the same every time.
func syntheticSpecs(n int) []string {
	specs := make([]string, n)
	for i, ds := range synthetic.DAG(n) {
		specs[i] = synthetic.Name(i)
		if len(ds) > 0 {
			specs[i] += ":" + strings.Join(ds, ",")
		}
	}
	return specs
}

// BenchmarkPlan500 plans a 500-component graph for three targets:
//
//	go test ./pipeline/plan -run '^$' -bench Plan500 -count 10
func BenchmarkPlan500(b *testing.B) {
	res := graph(syntheticSpecs(500)...)
	var targets []target.Target
	for _, n := range []string{"debian-12", "debian-13", "el9"} {
		t, _ := target.Builtin(n)
		targets = append(targets, t)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(project, res, targets, "amd64"); err != nil {
			b.Fatal(err)
		}
	}
}
