package spec

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzDirOnce sync.Once
	fuzzDir     string
)

// FuzzLoad feeds arbitrary project and software files through the whole
// loader: decoding, validation and hooks. It must never panic, and every
// problem it reports must carry a position in one of the two files.
// The committed corpus is under testdata/fuzz/FuzzLoad; run it longer with
//
//	go test ./pipeline/spec -run '^$' -fuzz FuzzLoad -fuzztime 60s
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/invalid/*.txtar")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		proj, soft := splitSeed(string(data))
		f.Add([]byte(proj), []byte(soft))
	}
	f.Fuzz(func(t *testing.T, project, software []byte) {
		fuzzDirOnce.Do(func() {
			var err error
			if fuzzDir, err = os.MkdirTemp("", "coach-fuzz-"); err != nil {
				panic(err)
			}
			os.MkdirAll(filepath.Join(fuzzDir, "projects"), 0o755)
			os.MkdirAll(filepath.Join(fuzzDir, "software"), 0o755)
		})
		if err := os.WriteFile(filepath.Join(fuzzDir, "projects", "app.yaml"), project, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fuzzDir, "software", "zlib.yaml"), software, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(fuzzDir)
		for _, p := range Problems(err) {
			if p.File != "projects/app.yaml" && p.File != "software/zlib.yaml" {
				t.Fatalf("problem outside the two files: %v", p)
			}
			if p.Line == 0 && !strings.HasPrefix(p.Msg, "project name") && !strings.HasPrefix(p.Msg, "software name") {
				t.Fatalf("problem without a line: %v", p)
			}
		}
	})
}

// splitSeed takes the project and software file bodies out of a txtar case.
func splitSeed(archive string) (project, software string) {
	parts := strings.Split(archive, "\n-- ")
	for _, p := range parts {
		name, body, ok := strings.Cut(p, " --\n")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, "projects/"):
			project = body
		case strings.HasPrefix(name, "software/") && strings.HasSuffix(name, ".yaml"):
			software = body
		}
	}
	return project, software
}
