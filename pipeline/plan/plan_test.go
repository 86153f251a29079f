package plan

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

var project = &spec.Project{Name: "app", Version: "1.0.0", InstallDir: "/opt/app"}

func debian12(t testing.TB) target.Target {
	tg, ok := target.Builtin("debian-12")
	if !ok {
		t.Fatal("no debian-12")
	}
	return tg
}

// graph makes a resolution from "name:dep,dep" specs.
func graph(specs ...string) *resolve.Resolution {
	res := &resolve.Resolution{Project: "app"}
	for _, s := range specs {
		name, deps, _ := strings.Cut(s, ":")
		c := resolve.Component{Name: name, Version: "1.0.0", Definition: "sha256:def-" + name, Source: resolve.Source{URL: "https://example.com/" + name + ".tar.gz", SHA256: strings.Repeat("a", 64)}}
		if deps != "" {
			c.Dependencies = strings.Split(deps, ",")
			slices.Sort(c.Dependencies)
		}
		res.Components = append(res.Components, c)
	}
	slices.SortFunc(res.Components, func(a, b resolve.Component) int { return strings.Compare(a.Name, b.Name) })
	return res
}

func TestOrderAndLevels(t *testing.T) {
	res := graph("curl:openssl,zlib,nghttp2", "openssl:zlib", "zlib", "nghttp2", "python:openssl,zlib,libffi", "libffi", "app:python,curl")
	pl, err := New(project, res, []target.Target{debian12(t)}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"libffi", "nghttp2", "zlib", "openssl", "curl", "python", "app"}
	if got := pl.Order(); !slices.Equal(got, wantOrder) {
		t.Errorf("order = %v, want %v", got, wantOrder)
	}
	wantLevels := [][]string{{"libffi", "nghttp2", "zlib"}, {"openssl"}, {"curl", "python"}, {"app"}}
	if fmt.Sprint(pl.Levels) != fmt.Sprint(wantLevels) {
		t.Errorf("levels = %v, want %v", pl.Levels, wantLevels)
	}
	if got := pl.Node("app").Transitive; !slices.Equal(got, []string{"curl", "libffi", "nghttp2", "openssl", "python", "zlib"}) {
		t.Errorf("app transitive = %v", got)
	}
	// The same graph given in any order plans the same.
	for i := range 20 {
		shuffled := *res
		shuffled.Components = slices.Clone(res.Components)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		r.Shuffle(len(shuffled.Components), func(a, b int) {
			shuffled.Components[a], shuffled.Components[b] = shuffled.Components[b], shuffled.Components[a]
		})
		pl2, err := New(project, &shuffled, []target.Target{debian12(t)}, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pl2.Order(), wantOrder) || fmt.Sprint(pl2.Levels) != fmt.Sprint(wantLevels) {
			t.Fatalf("shuffle %d planned differently: %v %v", i, pl2.Order(), pl2.Levels)
		}
		for _, n := range pl.Nodes {
			if pl2.Node(n.Name).Keys["debian-12"] != n.Keys["debian-12"] {
				t.Fatalf("shuffle %d changed the key of %s", i, n.Name)
			}
		}
	}
}

func TestCycleIsReportedAsPath(t *testing.T) {
	tests := []struct {
		specs []string
		want  string
	}{
		{[]string{"a:b", "b:c", "c:a"}, "dependency cycle: a -> b -> c -> a"},
		{[]string{"app:lib", "lib:util", "util:lib", "z"}, "dependency cycle: lib -> util -> lib"},
		{[]string{"x:x"}, "dependency cycle: x -> x"},
	}
	for _, tt := range tests {
		_, err := New(project, graph(tt.specs...), []target.Target{debian12(t)}, "amd64")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v: got %v, want %q", tt.specs, err, tt.want)
		}
	}
}

// TestKeyIsStable pins the key of a fixed input. It changes only when the
// key's inputs or KeySchema change, never with the machine, the run, the
// working directory or map iteration order; if it fails after such a
// deliberate change, bump KeySchema and update the constant.
// TestKeyIsStable: a literal target gives the same key every time (its
// image is not part of the key: see "target image" below).
func TestKeyIsStable(t *testing.T) {
	const want = "sha256:ab6ed2604f9dfbffb32a5f5047d1e56847836c08e82c7b0726f6e700b3fde2cc"
	// A literal target, so that editing the built-in catalogue (which does
	// change keys, deliberately) does not break this test.
	tg := target.Target{Name: "debian-12", Family: "debian", Format: "deb", Image: "docker.io/library/debian:bookworm",
		Toolchain: []string{"build-essential"}, LibDirs: []string{"/usr/lib/$MULTIARCH"}, Allow: []string{"libc.so.6"}, DistTag: "deb12", Compression: "zstd", Glibc: "2.36"}
	for range 5 {
		pl, err := New(project, graph("zlib", "pcre2:zlib"), []target.Target{tg}, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if got := pl.Node("pcre2").Keys["debian-12"]; got != want {
			t.Fatalf("pcre2 key = %s, want %s", got, want)
		}
	}
}

func TestKeyChangesWithEveryInput(t *testing.T) {
	base := func() (*spec.Project, *resolve.Resolution, target.Target, string) {
		p := *project
		return &p, graph("zlib", "pcre2:zlib", "other"), debian12(t), "amd64"
	}
	keyOf := func(p *spec.Project, res *resolve.Resolution, tg target.Target, arch string) map[string]string {
		pl, err := New(p, res, []target.Target{tg}, arch)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, n := range pl.Nodes {
			out[n.Name] = n.Keys[tg.Name]
		}
		return out
	}
	orig := keyOf(base())
	changes := []struct {
		name    string
		mutate  func(*spec.Project, *resolve.Resolution, *target.Target, *string)
		changed []string // components whose key must change; the rest must not
	}{
		{"zlib version", func(_ *spec.Project, r *resolve.Resolution, _ *target.Target, _ *string) {
			r.Component("zlib").Version = "1.3.2"
		}, []string{"zlib", "pcre2"}},
		{"zlib source checksum", func(_ *spec.Project, r *resolve.Resolution, _ *target.Target, _ *string) {
			r.Component("zlib").Source.SHA256 = strings.Repeat("b", 64)
		}, []string{"zlib", "pcre2"}},
		{"pcre2 definition", func(_ *spec.Project, r *resolve.Resolution, _ *target.Target, _ *string) {
			r.Component("pcre2").Definition = "sha256:other"
		}, []string{"pcre2"}},
		// The image is the Dagger runner's environment, and reaches its
		// layers' keys through its environment id (TestDaggerKeyCoversTheImage
		// in pipeline/build); the plan's keys, which the sandbox's
		// layers use as they are, must not move when coach lock pins it.
		{"target image", func(_ *spec.Project, _ *resolve.Resolution, tg *target.Target, _ *string) {
			tg.Image = "debian@sha256:" + strings.Repeat("c", 64)
		}, nil},
		{"target toolchain", func(_ *spec.Project, _ *resolve.Resolution, tg *target.Target, _ *string) {
			tg.Toolchain = append(tg.Toolchain, "cmake")
		}, []string{"zlib", "pcre2", "other"}},
		{"arch", func(_ *spec.Project, _ *resolve.Resolution, _ *target.Target, a *string) { *a = "arm64" }, []string{"zlib", "pcre2", "other"}},
		{"install_dir", func(p *spec.Project, _ *resolve.Resolution, _ *target.Target, _ *string) { p.InstallDir = "/opt/other" }, []string{"zlib", "pcre2", "other"}},
	}
	for _, c := range changes {
		p, res, tg, arch := base()
		c.mutate(p, res, &tg, &arch)
		got := keyOf(p, res, tg, arch)
		for name, k := range orig {
			if slices.Contains(c.changed, name) == (got[name] == k) {
				t.Errorf("%s: key of %s changed=%v, want %v", c.name, name, got[name] != k, slices.Contains(c.changed, name))
			}
		}
	}
}
