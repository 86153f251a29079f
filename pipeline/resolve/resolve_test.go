package resolve

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/spec"
)

var update = flag.Bool("update", false, "rewrite golden files")

const zlib = `name: zlib
license: Zlib
default_version: "~1.3"
versions:
  - {version: 1.2.13, url: "https://zlib.net/zlib-1.2.13.tar.gz", sha256: b3a24de97a8fdbc835b9833169501030b8977031bcb54b3b3ac13740f846ab30}
  - {version: 1.3.1, url: "https://zlib.net/zlib-1.3.1.tar.gz", sha256: 9a93b2b7dfdac77ceba5a558a580e74667dd6fede4585b91eefb60f03b72df23}
  - {version: 1.3.0, url: "https://zlib.net/zlib-1.3.tar.gz", sha256: ff0ba4c292013dbc27530b3a81e1f9a813cd39de01ca5e0f8bf355702efa593e}
  - {version: 2.0.0-beta.1, url: "https://zlib.net/zlib-2.0.0-beta.1.tar.gz", sha256: 1111111111111111111111111111111111111111111111111111111111111111}
build: [make install]
`

const tzdata = `name: tzdata
license: LicenseRef-PD
versions:
  - {version: 2024a, exact: true, url: "https://data.iana.org/time-zones/releases/tzdata2024a.tar.gz", sha256: 0d0434459acbd2059a7a8da1f3304a84a86591f6ed69c6248fffa502b6edffe3}
  - {version: 1.0.0, path: tzsrc}
build: [make install]
`

const curl = `name: curl
license: curl
dependencies: [zlib]
versions:
  - {version: 8.5.0, url: "https://curl.se/download/curl-8.5.0.tar.xz", sha256: 42ab8db9e20d8290a3b633e7fbb3cec15db34df65fd1015ef8ac1e4723750eeb}
build: [make install]
`

func project(software, extra string) string {
	return "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: " + software + "\n" + extra
}

// repo writes definitions into a temporary repository and loads it.
func repo(t *testing.T, files map[string]string) *spec.Repo {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := spec.Load(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return r
}

func resolveApp(t *testing.T, r *spec.Repo, opts Options) (*Resolution, error) {
	t.Helper()
	p, err := r.Project("app")
	if err != nil {
		t.Fatal(err)
	}
	return Resolve(r, p, opts)
}

func TestChoose(t *testing.T) {
	base := map[string]string{"software/zlib.yaml": zlib, "software/tzdata.yaml": tzdata, "software/tzsrc/Makefile": "all:\n", "software/curl.yaml": curl}
	tests := []struct {
		name      string
		software  string
		overrides string
		prefer    map[string]string
		want      map[string]string
		wantErr   []string
	}{
		{name: "default_version picks the highest match", software: "[zlib]", want: map[string]string{"zlib": "1.3.1"}},
		{name: "override replaces default_version", software: "[zlib]", overrides: "overrides: {zlib: \"~1.2\"}", want: map[string]string{"zlib": "1.2.13"}},
		{name: "exact version override", software: "[zlib]", overrides: "overrides: {zlib: 1.3.0}", want: map[string]string{"zlib": "1.3.0"}},
		{name: "pre-releases only when asked for", software: "[zlib]", overrides: "overrides: {zlib: \">=2.0.0-0\"}", want: map[string]string{"zlib": "2.0.0-beta.1"}},
		{name: "no default means the highest release", software: "[tzdata]", want: map[string]string{"tzdata": "1.0.0"}},
		{name: "exact pin by name", software: "[tzdata]", overrides: "overrides: {tzdata: 2024a}", want: map[string]string{"tzdata": "2024a"}},
		{name: "dependencies come in transitively", software: "[curl]", want: map[string]string{"curl": "8.5.0", "zlib": "1.3.1"}},
		{name: "a locked version is kept while it satisfies", software: "[zlib]", prefer: map[string]string{"zlib": "1.3.0"}, want: map[string]string{"zlib": "1.3.0"}},
		{name: "a locked version that no longer satisfies is dropped", software: "[zlib]", prefer: map[string]string{"zlib": "1.2.13"}, want: map[string]string{"zlib": "1.3.1"}},
		{name: "nothing satisfies: every version with its reason", software: "[zlib, curl]", overrides: "overrides: {zlib: \"~1.4\"}", wantErr: []string{
			`resolve zlib: no version satisfies "~1.4"; available versions:`,
			"\t1.2.13: \"1.2.13\" is less than \"1.4\"",
			"\t1.3.1: \"1.3.1\" is less than \"1.4\"",
			"\t2.0.0-beta.1: \"2.0.0-beta.1\" is a prerelease version and the constraint is only looking for release versions",
			"the constraint comes from the override at projects/app.yaml:8:19",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"projects/app.yaml": project(tt.software, tt.overrides)}
			for k, v := range base {
				files[k] = v
			}
			res, err := resolveApp(t, repo(t, files), Options{Prefer: tt.prefer})
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("resolved; want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, c := range res.Components {
				got[c.Name] = c.Version
			}
			if len(got) != len(tt.want) {
				t.Fatalf("resolved %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

func TestDefinitionDigest(t *testing.T) {
	digestOf := func(zlibDef string) string {
		t.Helper()
		res, err := resolveApp(t, repo(t, map[string]string{"projects/app.yaml": project("[zlib]", ""), "software/zlib.yaml": zlibDef}), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Component("zlib").Definition
	}
	base := digestOf(zlib)
	same := map[string]string{
		"a comment":             "# a comment\n" + zlib,
		"reformatted flow":      strings.Replace(zlib, "build: [make install]", "build:\n  - make install", 1),
		"another version added": strings.Replace(zlib, "versions:\n", "versions:\n  - {version: 1.1.0, url: \"https://zlib.net/zlib-1.1.0.tar.gz\", sha256: 2222222222222222222222222222222222222222222222222222222222222222}\n", 1),
	}
	for name, def := range same {
		if got := digestOf(def); got != base {
			t.Errorf("%s changed the definition digest", name)
		}
	}
	differ := map[string]string{
		"a build step": strings.Replace(zlib, "make install", "make install-strip", 1),
		"the license":  strings.Replace(zlib, "license: Zlib", "license: MIT", 1),
		"env":          zlib + "env: {CFLAGS: -O3}\n",
	}
	for name, def := range differ {
		if got := digestOf(def); got == base {
			t.Errorf("changing %s kept the definition digest", name)
		}
	}
}

func TestLockRoundTripAndStaleness(t *testing.T) {
	files := map[string]string{"projects/app.yaml": project("[curl]", ""), "software/zlib.yaml": zlib, "software/curl.yaml": curl}
	r := repo(t, files)
	res, err := resolveApp(t, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lock := res.Lock()
	data := lock.Marshal()
	golden := "testdata/app.lock"
	if *update {
		os.WriteFile(golden, data, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(want) {
		t.Errorf("lock differs from %s:\n%s", golden, data)
	}
	if err := WriteLock(r.Root, lock); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLock(r.Root, "app")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(r.Root, back, res); err != nil {
		t.Fatalf("fresh lock is stale: %v", err)
	}
	if again := back.Marshal(); string(again) != string(data) {
		t.Errorf("lock does not round-trip:\n%s", again)
	}

	// A changed definition makes the lock stale and says which component.
	os.WriteFile(filepath.Join(r.Root, "software/zlib.yaml"), []byte(strings.Replace(zlib, "make install", "make install-strip", 1)), 0o644)
	r2, err := spec.Load(r.Root)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := resolveApp(t, r2, Options{Prefer: back.Versions()})
	if err != nil {
		t.Fatal(err)
	}
	err = Check(r.Root, back, res2)
	var stale *StaleError
	if err == nil || !strings.Contains(err.Error(), "zlib@1.3.1: definition changed") {
		t.Fatalf("want a stale-lock error naming zlib, got %v", err)
	}
	if !asStale(err, &stale) || len(stale.Changes) != 1 {
		t.Errorf("want exactly one change, got %v", err)
	}

	// A lock naming an older version that still satisfies keeps it; one
	// for a version the constraint excludes is stale.
	back.Components[1].Version = "1.2.13"
	res3, err := resolveApp(t, r2, Options{Prefer: back.Versions()})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(r.Root, back, res3); err == nil || !strings.Contains(err.Error(), "zlib: locked 1.2.13, resolves to 1.3.1") {
		t.Errorf("want a version change, got %v", err)
	}
}

func asStale(err error, target **StaleError) bool {
	s, ok := err.(*StaleError)
	if ok {
		*target = s
	}
	return ok
}

func TestReadLockRejectsUnknownFields(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "projects"), 0o755)
	os.WriteFile(filepath.Join(dir, "projects/app.lock"), []byte("lock_version: 1\nproject: app\nextra: 1\n"), 0o644)
	if _, err := ReadLock(dir, "app"); err == nil || !strings.Contains(err.Error(), "coach lock app") {
		t.Errorf("want an error that says how to regenerate, got %v", err)
	}
	if l, err := ReadLock(t.TempDir(), "app"); l != nil || err != nil {
		t.Errorf("missing lock: %v %v", l, err)
	}
}

// TestRelockEpoch: source_date_epoch moves with what is built, not with
// the clock. Pinning images (or relocking unchanged definitions) keeps the
// old lock's epoch; a moved version records the new time.
func TestRelockEpoch(t *testing.T) {
	r := repo(t, map[string]string{"projects/app.yaml": project("[curl]", ""), "software/zlib.yaml": zlib, "software/curl.yaml": curl})
	p, err := r.Project("app")
	if err != nil {
		t.Fatal(err)
	}
	day := func(n int) time.Time { return time.Date(2026, 1, n, 0, 0, 0, 0, time.UTC) }
	first, err := Relock(r, p, nil, false, nil, nil, day(1))
	if err != nil {
		t.Fatal(err)
	}
	if first.Lock.SourceDateEpoch != day(1).Unix() {
		t.Fatalf("a new lock's epoch: %d", first.Lock.SourceDateEpoch)
	}
	again, err := Relock(r, p, first.Lock, false, nil, nil, day(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changes) != 0 || string(again.Lock.Marshal()) != string(first.Lock.Marshal()) {
		t.Errorf("relocking unchanged definitions: changes %v\n%s", again.Changes, again.Lock.Marshal())
	}
	pinned, err := Relock(r, p, first.Lock, false, nil, map[string]string{"debian-12": "debian@sha256:" + strings.Repeat("a", 64)}, day(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(pinned.Changes) != 1 || pinned.Lock.Images["debian-12"] == "" || pinned.Lock.SourceDateEpoch != day(1).Unix() {
		t.Errorf("pinning an image: changes %v, images %v, epoch %d (want the old lock's, %d)", pinned.Changes, pinned.Lock.Images, pinned.Lock.SourceDateEpoch, day(1).Unix())
	}
	// zlib held back to 1.2.13 in the old lock: an upgrade moves it, and
	// the packages get the new time.
	old := *first.Lock
	old.Components = append([]LockComponent(nil), first.Lock.Components...)
	for i := range old.Components {
		if old.Components[i].Name == "zlib" {
			old.Components[i].Version = "1.2.13"
		}
	}
	moved, err := Relock(r, p, &old, true, nil, nil, day(4))
	if err != nil {
		t.Fatal(err)
	}
	if len(moved.Changes) == 0 || moved.Lock.SourceDateEpoch != day(4).Unix() {
		t.Errorf("an upgrade: changes %v, epoch %d (want %d)", moved.Changes, moved.Lock.SourceDateEpoch, day(4).Unix())
	}
}
