package plan

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/target"
)

// synthetic returns a random DAG of n components, each depending on up to
// four earlier ones, the same every time.
func synthetic(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	specs := make([]string, n)
	for i := range n {
		deps := map[string]bool{}
		for range r.IntN(5) {
			if i > 0 {
				deps[fmt.Sprintf("c%03d", r.IntN(i))] = true
			}
		}
		var ds []string
		for d := range deps {
			ds = append(ds, d)
		}
		specs[i] = fmt.Sprintf("c%03d:%s", i, strings.Join(ds, ","))
		if len(ds) == 0 {
			specs[i] = fmt.Sprintf("c%03d", i)
		}
	}
	return specs
}

// BenchmarkPlan500 plans a 500-component graph for three targets:
//
//	go test ./pipeline/plan -run '^$' -bench Plan500 -count 10
func BenchmarkPlan500(b *testing.B) {
	res := graph(synthetic(500)...)
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
