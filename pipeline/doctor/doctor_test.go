package doctor

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestRegistry runs a registry of fakes: a missing tool fails with its
// package as the fix and is all --fix installs, a present one passes with
// its reason, user-only checks run only for users, groups come in order,
// and a runner is usable only when it was checked and all its checks
// passed.
func TestRegistry(t *testing.T) {
	saved, savedLook := checks, lookPath
	t.Cleanup(func() { checks, lookPath = saved, savedLook })
	checks = nil
	lookPath = func(name string) (string, error) {
		if name == "present" {
			return "/usr/bin/present", nil
		}
		return "", errors.New("not found")
	}
	Register(
		Check{Name: "tool: missing", Group: Tools, Tool: "missing", Package: "pkg-missing", Why: "needed"},
		Check{Name: "sandbox: present", Group: Sandbox, Runner: "sandbox", Tool: "present", Package: "pkg-present", Why: "runs steps"},
		Check{Name: "sandbox: user", Group: Sandbox, Runner: "sandbox", UserOnly: true, Tool: "missing", Package: "uidmap", Why: "maps ids"},
		Check{Name: "dagger: engine", Group: Dagger, Run: func(context.Context, Env) []Result {
			return []Result{{OK: true, Runner: "dagger"}, Of("dagger: image x", errors.New("no"), "", "pull it")}
		}},
	)
	root := Run(context.Background(), Env{})
	var names []string
	for _, r := range root {
		names = append(names, r.Name)
	}
	if want := []string{"sandbox: present", "dagger: engine", "dagger: image x", "tool: missing"}; !slices.Equal(names, want) {
		t.Fatalf("ran %q, want %q", names, want)
	}
	if r := root[0]; !r.OK || r.Detail != "runs steps" {
		t.Errorf("a present tool: %+v", r)
	}
	if r := root[3]; r.OK || r.Package != "pkg-missing" || r.Fix != "apt-get install pkg-missing" {
		t.Errorf("a missing tool: %+v", r)
	}
	if !Usable(root, "sandbox") || !Usable(root, "dagger") || Usable(root, "other") {
		t.Error("usable runners as root")
	}
	if got := Missing(Env{}); !slices.Equal(got, []string{"pkg-missing"}) {
		t.Errorf("missing as root: %q", got)
	}
	user := Run(context.Background(), Env{User: true})
	if Usable(user, "sandbox") {
		t.Error("the sandbox is usable as a user without its user-only tool")
	}
	if got := Missing(Env{User: true}); !slices.Equal(got, []string{"uidmap", "pkg-missing"}) {
		t.Errorf("missing as a user: %q", got)
	}
}
