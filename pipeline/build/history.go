package build

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/plan"
)

// History remembers how long each component's last build took and how
// large its source was, in a file of its own beside the layer cache, so
// that the scheduler's estimates survive a cold (emptied) layer cache.
type History struct {
	Path string
}

// HistoryEntry is one component's last build.
type HistoryEntry struct {
	Seconds     float64   `json:"seconds"`
	SourceBytes int64     `json:"source_bytes,omitempty"`
	At          time.Time `json:"at"`
}

// Load returns the history; a missing or unreadable file is empty.
func (h *History) Load() map[string]HistoryEntry {
	out := map[string]HistoryEntry{}
	if h == nil {
		return out
	}
	if data, err := os.ReadFile(h.Path); err == nil {
		json.Unmarshal(data, &out)
	}
	return out
}

// Record adds a component's build, under a lock shared with other runs.
func (h *History) Record(component string, e HistoryEntry) {
	if h == nil {
		return
	}
	os.MkdirAll(filepath.Dir(h.Path), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := lockfile.Lock(ctx, h.Path+".lock", 20*time.Millisecond)
	if err != nil {
		return
	}
	defer unlock()
	all := h.Load()
	all[component] = e
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return
	}
	tmp := h.Path + ".tmp"
	if os.WriteFile(tmp, data, 0o644) == nil {
		os.Rename(tmp, h.Path)
	}
}

// sourceRate is the build speed assumed, in bytes of (compressed) source
// per second, before any build time is known: about what a C library's
// configure and make take on two cores.
const sourceRate = 40 << 10

// estimates gives every component of a plan an estimated build time: its
// last build's, else its source size at the rate the known builds went
// (bytes per second, median), else at sourceRate; a component of which
// nothing is known gets the median of the others (1 when none is known),
// so that chains are ranked by length.
func estimates(pl *plan.Plan, hist map[string]HistoryEntry, sizes map[string]int64) map[string]float64 {
	out := map[string]float64{}
	var rates []float64
	for _, n := range pl.Nodes {
		if e, ok := hist[n.Name]; ok && e.Seconds > 0 {
			out[n.Name] = e.Seconds
			if e.SourceBytes > 0 {
				rates = append(rates, float64(e.SourceBytes)/e.Seconds)
			}
		}
	}
	rate := float64(sourceRate)
	if len(rates) > 0 {
		slices.Sort(rates)
		rate = rates[len(rates)/2]
	}
	for _, n := range pl.Nodes {
		if _, ok := out[n.Name]; !ok && sizes[n.Name] > 0 {
			out[n.Name] = float64(sizes[n.Name]) / rate
		}
	}
	return out
}
