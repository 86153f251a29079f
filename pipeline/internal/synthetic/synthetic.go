// Package synthetic makes the random dependency graphs the planning
// benchmarks and tests run on: the same graph every time for a size.
package synthetic

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
)

// Name is the name of component i: c000, c001, ...
func Name(i int) string { return fmt.Sprintf("c%03d", i) }

// DAG returns the dependencies of n components, each on up to four
// earlier ones, sorted.
func DAG(n int) [][]string {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]string, n)
	for i := range n {
		deps := map[string]bool{}
		for range r.IntN(5) {
			if i > 0 {
				deps[Name(r.IntN(i))] = true
			}
		}
		out[i] = slices.Sorted(maps.Keys(deps))
	}
	return out
}
