package build_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/internal/jobserver"
)

// TestSandboxJobserver builds three components at once in the sandbox,
// each running a plain make of eight parallel jobs, with a job server of
// two tokens: across the three builds and their makes, never more than two
// jobs run at a time, and make finds the server (no "jobserver
// unavailable" warning). Each job notes when it started and ended, in the
// layer; the test adds up the overlaps from those times.
func TestSandboxJobserver(t *testing.T) {
	r := sandboxRunner(t)
	root := t.TempDir()
	var mk strings.Builder
	mk.WriteString("JOBS = a b c d e f g h\nall: $(JOBS)\n$(JOBS):\n")
	mk.WriteString("\t@s=$$(date +%s.%N); sleep 0.4; echo \"$$s $$(date +%s.%N)\" >> $(DEST)/times\n")
	files := map[string]string{
		"projects/app.yaml":     "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [one, two, three]\n",
		"software/src/Makefile": mk.String(),
	}
	for _, n := range []string{"one", "two", "three"} {
		files["software/"+n+".yaml"] = "name: " + n + "\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\nbuild:\n" +
			"  - mkdir -p {{.InstallDir}}/" + n + " && make DEST={{.InstallDir}}/" + n + " 2>&1 | tee {{.InstallDir}}/" + n + "/make.log\n"
	}
	writeFiles(t, root, files)
	js, err := jobserver.New(2)
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	b := builder(t, r, root)
	b.Jobs, b.Jobserver = 3, js
	res, err := buildProject(t, b, root, "app", "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ start, end float64 }
	var spans []span
	for _, c := range res.Components {
		dir := filepath.Join(c.Layer, c.Name)
		log, _ := os.ReadFile(filepath.Join(dir, "make.log"))
		if strings.Contains(string(log), "jobserver") || strings.Contains(string(log), "warning") {
			t.Errorf("%s: make did not use the job server:\n%s", c.Name, log)
		}
		data, err := os.ReadFile(filepath.Join(dir, "times"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			f := strings.Fields(l)
			s, _ := strconv.ParseFloat(f[0], 64)
			e, _ := strconv.ParseFloat(f[1], 64)
			spans = append(spans, span{s, e})
		}
	}
	if len(spans) != 24 {
		t.Fatalf("%d jobs ran, want 24", len(spans))
	}
	// The most jobs running at one moment: sweep the start and end times.
	type edge struct {
		at    float64
		delta int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.start, 1}, edge{s.end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return a.delta - b.delta // an end before a start at the same time
	})
	peak, now := 0, 0
	for _, e := range edges {
		now += e.delta
		peak = max(peak, now)
	}
	t.Logf("24 jobs of 0.4 s in three builds with 2 tokens: at most %d at once", peak)
	if peak > 2 {
		t.Errorf("%d jobs ran at once with a job server of 2 tokens", peak)
	}
	if peak < 2 {
		t.Errorf("only %d job at a time: the builds did not share the tokens", peak)
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
