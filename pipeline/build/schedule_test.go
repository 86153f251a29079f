package build

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/plan"
	"github.com/coach-build/coach/pipeline/spec"
)

// pyappShape is the dependency graph of projects/pyapp, in plan order
// (dependencies first).
func pyappShape() *plan.Plan {
	node := func(name string, deps ...string) *plan.Node { return &plan.Node{Name: name, Dependencies: deps} }
	return &plan.Plan{Nodes: []*plan.Node{
		node("bzip2"), node("expat"), node("libffi"), node("ncurses"), node("openssl"),
		node("readline", "ncurses"), node("sqlite"), node("xz"), node("zlib"),
		node("python", "bzip2", "expat", "libffi", "ncurses", "openssl", "readline", "sqlite", "xz", "zlib"),
		node("pyapp", "python"),
	}}
}

func names(nodes []*plan.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func TestCriticalFirst(t *testing.T) {
	// Seconds measured for pyapp on debian-12 (two cores).
	measured := map[string]float64{"bzip2": 6, "expat": 45, "libffi": 41, "ncurses": 89, "openssl": 406,
		"readline": 32, "sqlite": 100, "xz": 101, "zlib": 10, "python": 176, "pyapp": 1}
	for _, tt := range []struct {
		name    string
		seconds map[string]float64
		first   []string
	}{
		// No history: the longest chain in components (ncurses, readline,
		// python, pyapp) first, then plan order.
		{"no history", nil, []string{"ncurses", "bzip2", "expat", "libffi", "openssl"}},
		// With history: OpenSSL, the build Python waits longest for, first.
		{"history", measured, []string{"openssl", "ncurses", "xz", "sqlite", "expat"}},
		// A component never built counts as the median of the known ones
		// (here 100 s): ncurses' chain of four unknowns outweighs xz, and
		// zlib, known to be quick, starts after every other library.
		{"partial history", map[string]float64{"openssl": 400, "xz": 100, "zlib": 10}, []string{"openssl", "ncurses", "bzip2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := names(criticalFirst(pyappShape(), tt.seconds))
			if !slices.Equal(got[:len(tt.first)], tt.first) {
				t.Errorf("order %v, want it to start %v", got, tt.first)
			}
			if got[len(got)-1] != "pyapp" || got[len(got)-2] != "python" {
				t.Errorf("order %v: python and pyapp must come last", got)
			}
			if tt.name == "partial history" && got[len(got)-3] != "zlib" {
				t.Errorf("order %v: zlib, the quickest, should start last of the libraries", got)
			}
		})
	}
}

func TestLayerDurations(t *testing.T) {
	dir := t.TempDir()
	write := func(key, component string, seconds float64, at time.Time) {
		os.MkdirAll(filepath.Join(dir, key), 0o755)
		data, _ := json.Marshal(LayerMeta{Component: component, Key: "sha256:" + key, Seconds: seconds, BuiltAt: at})
		os.WriteFile(filepath.Join(dir, key, "meta.json"), data, 0o644)
	}
	now := time.Now()
	write("a1", "openssl", 400, now.Add(-time.Hour))
	write("a2", "openssl", 350, now) // the latest build counts
	write("b1", "zlib", 10, now)
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755) // not a layer
	got := (&LayerCache{Dir: dir}).Durations()
	if len(got) != 2 || got["openssl"] != 350 || got["zlib"] != 10 {
		t.Errorf("Durations() = %v", got)
	}
}

// TestEstimatesWithoutHistory: with no build history, the source sizes
// rank the builds, at the rate of the builds that are known.
func TestEstimatesWithoutHistory(t *testing.T) {
	node := func(name string) *plan.Node { return &plan.Node{Name: name} }
	pl := &plan.Plan{Nodes: []*plan.Node{node("libyaml"), node("pcre2"), node("xz"), node("zlib")}}
	// Debian's orig tarballs of the CI project.
	sizes := map[string]int64{"libyaml": 85_055, "pcre2": 2_397_194, "xz": 1_485_272, "zlib": 1_239_825}
	est := estimates(pl, nil, sizes)
	if got := names(criticalFirst(pl, est)); got[0] != "pcre2" {
		t.Errorf("cold order %v: pcre2, the largest source, should start first", got)
	}
	if want := float64(sizes["pcre2"]) / sourceRate; est["pcre2"] != want {
		t.Errorf("pcre2 estimated at %.1fs, want %.1fs at the default rate", est["pcre2"], want)
	}
	// One build known (xz, 1.5 MB in 40 s): the others at its rate.
	hist := map[string]HistoryEntry{"xz": {Seconds: 40, SourceBytes: 1_485_272}}
	est = estimates(pl, hist, sizes)
	if est["xz"] != 40 || est["zlib"] != float64(sizes["zlib"])/(1_485_272.0/40) {
		t.Errorf("estimates with xz known: %v", est)
	}
}

// TestHistorySurvivesAColdLayerCache: build times live beside the layer
// cache, so removing the layers keeps them.
func TestHistorySurvivesAColdLayerCache(t *testing.T) {
	f := newFixture(t)
	if _, err := f.build(t, "debian-12"); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(f.builder.Layers.Dir)
	hist := f.builder.history().Load()
	for _, n := range []string{"zlib", "pcre2", "libyaml", "xz"} {
		if _, ok := hist[n]; !ok {
			t.Errorf("no history of %s after the layers were removed: %v", n, hist)
		}
	}
}

// TestMakeflags: plain make gets -j{{.Jobs}} without a job server; with
// one, MAKEFLAGS is left for the runner to fill with the server's flags;
// a definition's own MAKEFLAGS is kept either way.
func TestMakeflags(t *testing.T) {
	vars := spec.StepVars{InstallDir: "/opt/app", Embedded: "/opt/app/embedded", Jobs: 3}
	for _, c := range []struct {
		extra     spec.Env
		jobserver bool
		want      string // "" for none
	}{
		{nil, false, "MAKEFLAGS=-j3"},
		{nil, true, ""},
		{spec.Env{"MAKEFLAGS": "-j1"}, false, "MAKEFLAGS=-j1"},
		{spec.Env{"MAKEFLAGS": "-j1"}, true, "MAKEFLAGS=-j1"},
	} {
		env, err := jobEnv(vars, c.extra, c.jobserver)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, kv := range env {
			if strings.HasPrefix(kv, "MAKEFLAGS=") {
				got = kv
			}
		}
		if got != c.want {
			t.Errorf("env %v, job server %v: %q, want %q", c.extra, c.jobserver, got, c.want)
		}
	}
}
