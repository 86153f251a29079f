package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/binfmt"
	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/target"
)

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Package is the Debian package that fixes a failed check, for --fix.
	Package string `json:"package,omitempty"`
}

type doctorJSON struct {
	Runners map[string]bool `json:"runners"`
	Checks  []check         `json:"checks"`
}

func (a *app) doctorCommand() *cobra.Command {
	var cacheDir string
	var fix bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say which runners are usable here, and if one is not, why and how to fix it",
		Long: `doctor checks what coach needs on this machine: the sandbox runner's host tools
(bubblewrap, mmdebstrap), each target's package mirror, a Dagger engine, the
cache directory and the tools verify and lint use.

With --fix it installs the missing host tools with apt-get: directly as root,
through sudo otherwise. It says which packages before it runs anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cacheDir == "" {
				cacheDir = cache.DefaultDir()
			}
			if fix {
				if err := a.installHostTools(cmd.Context(), hostToolPackages()); err != nil {
					return err
				}
				if os.Geteuid() == 0 {
					ids, wrote, err := sandbox.RegisterIDs()
					if err != nil {
						return err
					}
					if wrote {
						fmt.Fprintf(a.stderr, "coach doctor --fix: registered %s for coach's sandboxes in /etc/subuid and /etc/subgid\n", ids)
					}
				}
			}
			var checks []check
			var pkg string // the package that fixes the next check, if any
			add := func(name string, err error, ok, fix string) bool {
				c := check{Name: name, OK: err == nil, Detail: ok}
				if err != nil {
					c.Detail, c.Fix, c.Package = err.Error(), fix, pkg
				}
				pkg = ""
				checks = append(checks, c)
				return err == nil
			}
			// Sandbox.
			sb := &sandbox.Runner{Rootfs: &sandbox.Rootfs{Dir: cache.New(cacheDir).Rootfs()}}
			mode, err := sb.Probe()
			if _, lerr := exec.LookPath("bwrap"); lerr != nil {
				pkg = "bubblewrap"
			}
			sandboxOK := add("sandbox: bubblewrap", err, "bwrap runs with every namespace unshared", "apt-get install bubblewrap; as a user, enable unprivileged user namespaces")
			sandboxOK = add("sandbox: ids", idsCheck(), idsDetail(), "coach doctor --fix (registers a free range for coach in /etc/subuid and /etc/subgid)") && sandboxOK
			if sandboxOK {
				detail := "dependency layers are overlayfs lower dirs"
				if mode == sandbox.Copy {
					detail = "overlayfs cannot be mounted here; dependency layers are copied (slower, same result)"
				}
				add("sandbox: layers", nil, detail, "")
			}
			_, err = exec.LookPath("mmdebstrap")
			pkg = "mmdebstrap"
			sandboxOK = add("sandbox: mmdebstrap", err, "makes Debian-family root filesystems", "apt-get install mmdebstrap") && sandboxOK
			if os.Geteuid() != 0 {
				_, err = exec.LookPath("newuidmap")
				pkg = "uidmap"
				sandboxOK = add("sandbox: newuidmap", err, "maps subordinate ids for mmdebstrap --mode=unshare", "apt-get install uidmap, and give the user ranges in /etc/subuid and /etc/subgid") && sandboxOK
			}
			if os.Geteuid() != 0 {
				var err error
				if usernsRestricted(procDir()) {
					err = errors.New("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): bubblewrap cannot unshare as a user")
				}
				sandboxOK = add("sandbox: user namespaces", err, "unprivileged user namespaces are allowed", "run coach as root (sudo), or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give bwrap an AppArmor profile that allows userns") && sandboxOK
			}
			families := map[string]bool{}
			for _, name := range target.BuiltinNames() {
				t, _ := target.Builtin(name)
				if t.Bootstrap.Tool == "" || families[t.Family] {
					continue
				}
				families[t.Family] = true
				detail, kpkg, err := keyringCheck(keyringDir(), t.Family)
				pkg = kpkg
				add("sandbox: "+t.Family+" keyring", err, detail, "apt-get install "+kpkg)
			}
			for _, name := range target.BuiltinNames() {
				t, _ := target.Builtin(name)
				if t.Bootstrap.Tool == "" {
					add("sandbox: "+name, errors.New("no bootstrap recipe: rpm distributions cannot be made without a registry"), "", "build "+name+" with --runner dagger")
					continue
				}
				base, err := mirror.Host().Expand(t.Bootstrap.Mirror)
				if err == nil {
					err = reachable(base + "/dists/" + t.Bootstrap.Suite + "/Release")
				}
				add("sandbox: "+name+" mirror", err, base+" serves "+t.Bootstrap.Suite, "make the mirror reachable, or set "+mirrorHint(t.Bootstrap.Mirror)+"bootstrap.mirror in a custom target")
			}
			// Other architectures, under qemu-user through binfmt_misc.
			dir := binfmt.Path()
			if list, err := binfmt.List(dir); err != nil {
				add("emulation: binfmt_misc", err, "", "mount -t binfmt_misc binfmt_misc "+binfmt.Dir)
			} else {
				var names []string
				others := 0
				for _, in := range list {
					if !in.Enabled || !strings.HasPrefix(in.Name, "qemu-") {
						continue
					}
					if slices.ContainsFunc(target.Arches, func(a string) bool { return in.Name == "qemu-"+binfmt.Machine(a) }) {
						names = append(names, in.Name+" (flags "+in.Flags+")")
					} else {
						others++
					}
				}
				detail := fmt.Sprintf("mounted at %s; %s", dir, cmp.Or(strings.Join(names, ", "), "no interpreter for "+strings.Join(target.Arches, " or ")))
				if others > 0 {
					detail += fmt.Sprintf(", and %d other qemu interpreters", others)
				}
				add("emulation: binfmt_misc", nil, detail, "")
			}
			for _, arch := range target.Arches {
				if arch == runtime.GOARCH {
					continue
				}
				pkg = "qemu-user-static"
				add("emulation: "+arch, binfmt.CanRun(dir, arch), arch+" programs run here under qemu-user, in the sandbox too", binfmt.Fix(arch))
			}
			_, err = exec.LookPath("arch-test")
			pkg = "arch-test"
			add("emulation: arch-test", err, "mmdebstrap checks a foreign architecture runs with it", "apt-get install arch-test")
			// Dagger: a real query, and each target's image pulled.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			daggerOK := false
			var images []string
			for _, name := range target.BuiltinNames() {
				if t, _ := target.Builtin(name); t.Image != "" && !slices.Contains(images, t.Image) {
					images = append(images, t.Image)
				}
			}
			dr := dagger.New(nil)
			if version, failed, err := dr.Ping(ctx, images); err != nil {
				add("dagger: engine", err, "", "start an engine and set _EXPERIMENTAL_DAGGER_RUNNER_HOST (unix://, tcp://), or run coach under `dagger run`")
			} else {
				daggerOK = add("dagger: engine", nil, dagger.Engine()+" answered, version "+version, "")
				for _, img := range images {
					add("dagger: image "+img, failed[img], "pulled", "make the registry reachable from the engine, or set image in a custom target to a mirror")
				}
				// Foreign arches: a probe program of each, run by the engine.
				if native, failed, err := dr.Platforms(ctx, target.Arches); err != nil {
					add("dagger: emulation", err, "", "")
				} else {
					for _, arch := range target.Arches {
						if strings.HasSuffix(native, "/"+arch) {
							add("dagger: linux/"+arch, nil, "the engine's own platform", "")
							continue
						}
						add("dagger: linux/"+arch, failed[arch], "the engine ("+native+") runs linux/"+arch+" programs under emulation", "")
					}
				}
			}
			dr.Close()
			// Cache and host tools for the later stages.
			add("cache", writable(cacheDir), cacheDir+" is writable"+freeSpace(cacheDir), "choose another --cache-dir or COACH_CACHE_DIR")
			for _, tool := range []struct{ bin, pkg, why string }{
				{"dpkg-deb", "dpkg", "inspecting deb packages"},
				{"rpm", "rpm", "verifying rpm packages"},
				{"lintian", "lintian", "linting deb packages"},
			} {
				_, err := exec.LookPath(tool.bin)
				pkg = tool.pkg
				add("tool: "+tool.bin, err, "for "+tool.why, "apt-get install "+tool.pkg)
			}
			out := doctorJSON{Runners: map[string]bool{"sandbox": sandboxOK, "dagger": daggerOK}, Checks: checks}
			if a.output(out) {
				for _, c := range checks {
					mark := "ok  "
					if !c.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(a.stdout, "%s %-32s %s\n", mark, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(a.stdout, "     %-32s fix: %s\n", "", c.Fix)
					}
				}
				fmt.Fprintf(a.stdout, "runners: sandbox %s, dagger %s\n", usable(sandboxOK), usable(daggerOK))
			}
			if !sandboxOK && !daggerOK {
				return errors.New("no runner is usable here")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "cache directory to check")
	cmd.Flags().BoolVar(&fix, "fix", false, "install the missing host tools with apt-get (as root, or through sudo), then check")
	return cmd
}

// idsCheck says whether coach has host ids for its sandboxes' root.
func idsCheck() error {
	_, err := sandbox.IDs()
	return err
}

// idsDetail says which host ids are root in the sandboxes, and where that
// comes from.
func idsDetail() string {
	ids, err := sandbox.IDs()
	if err != nil {
		return ""
	}
	switch ids.Source {
	case "user":
		return "steps run as root of a user namespace that maps only you (" + ids.String() + ")"
	case "default":
		return "steps run as root of a user namespace that maps host " + ids.String() + ", never host root; coach doctor --fix registers the range in /etc/subuid and /etc/subgid so that no other tool takes it"
	}
	return "steps run as root of a user namespace that maps host " + ids.String() + ", never host root"
}

// mirrorHint names the variable that sets an archive reference, if it is one.
func mirrorHint(ref string) string {
	if name, _, ok := mirror.Ref(ref); ok {
		return mirror.EnvVar(name) + ", or "
	}
	return ""
}

func usable(ok bool) string {
	if ok {
		return "usable"
	}
	return "NOT usable"
}

func reachable(url string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Head(url)
	if err != nil {
		return fmt.Errorf("%s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".doctor-")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
