package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/doctor"
	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/target"
)

// The sandbox runner's needs, as coach doctor reports them.
func init() {
	doctor.Register(
		doctor.Check{Name: "sandbox: bubblewrap", Group: doctor.Sandbox, Runner: "sandbox", Tool: "bwrap", Package: "bubblewrap",
			Why: "runs every build step in its own namespaces", Run: bubblewrapCheck},
		doctor.Check{Name: "sandbox: ids", Group: doctor.Sandbox, Runner: "sandbox", Run: idsCheck},
		doctor.Check{Name: "sandbox: mmdebstrap", Group: doctor.Sandbox, Runner: "sandbox", Tool: "mmdebstrap", Package: "mmdebstrap",
			Why: "makes Debian-family root filesystems"},
		doctor.Check{Name: "sandbox: newuidmap", Group: doctor.Sandbox, Runner: "sandbox", Tool: "newuidmap", Package: "uidmap", UserOnly: true,
			Why: "maps subordinate ids for mmdebstrap --mode=unshare (give the user ranges in /etc/subuid and /etc/subgid)"},
		doctor.Check{Name: "sandbox: user namespaces", Group: doctor.Sandbox, Runner: "sandbox", UserOnly: true, Run: usernsCheck},
		doctor.Check{Name: "sandbox: keyrings", Group: doctor.Sandbox, Run: keyringChecks},
		doctor.Check{Name: "sandbox: mirrors", Group: doctor.Sandbox, Run: mirrorChecks},
		doctor.Check{Name: "emulation: arch-test", Group: doctor.Emulation, Tool: "arch-test", Package: "arch-test",
			Why: "mmdebstrap checks a foreign architecture runs with it"},
	)
}

// bubblewrapCheck runs a sandbox, and says whether layers are overlays.
func bubblewrapCheck(context.Context, doctor.Env) []doctor.Result {
	mode, err := (&Runner{}).Probe()
	if err != nil {
		r := doctor.Fail("", err, "apt-get install bubblewrap; as a user, enable unprivileged user namespaces")
		r.Runner = "sandbox"
		return []doctor.Result{r}
	}
	layers := "dependency layers are overlayfs lower dirs"
	if mode == Copy {
		layers = "overlayfs cannot be mounted here; dependency layers are copied (slower, same result)"
	}
	return []doctor.Result{
		{OK: true, Detail: "bwrap runs with every namespace unshared", Runner: "sandbox"},
		doctor.Pass("sandbox: layers", layers),
	}
}

// idsCheck says which host ids are root in the sandboxes, and where
// that comes from.
func idsCheck(context.Context, doctor.Env) []doctor.Result {
	ids, err := IDs()
	r := doctor.Result{Runner: "sandbox"}
	switch {
	case err != nil:
		r.Detail, r.Fix = err.Error(), "coach doctor --fix (registers a free range for coach in /etc/subuid and /etc/subgid)"
	case ids.Source == "user":
		r.OK, r.Detail = true, "steps run as root of a user namespace that maps only you ("+ids.String()+")"
	case ids.Source == "default":
		r.OK, r.Detail = true, "steps run as root of a user namespace that maps host "+ids.String()+", never host root; coach doctor --fix registers the range in /etc/subuid and /etc/subgid so that no other tool takes it"
	default:
		r.OK, r.Detail = true, "steps run as root of a user namespace that maps host "+ids.String()+", never host root"
	}
	return []doctor.Result{r}
}

// RegisterIDs records coach's id range in /etc/subuid and /etc/subgid
// (doctor --fix, as root), saying whether it wrote them.
func RegisterIDs() (userns.IDs, bool, error) { return userns.Register(userns.SystemFiles) }

func usernsCheck(context.Context, doctor.Env) []doctor.Result {
	var err error
	if UsernsRestricted(ProcDir()) {
		err = errors.New("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): bubblewrap cannot unshare as a user")
	}
	r := doctor.Of("", err, "unprivileged user namespaces are allowed",
		"run coach as root (sudo), or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give bwrap an AppArmor profile that allows userns")
	r.Runner = "sandbox"
	return []doctor.Result{r}
}

// keyringChecks: each target family's archive keyring is here.
func keyringChecks(context.Context, doctor.Env) []doctor.Result {
	var out []doctor.Result
	families := map[string]bool{}
	for _, name := range target.BuiltinNames() {
		t, _ := target.Builtin(name)
		if t.Bootstrap.Tool == "" || families[t.Family] {
			continue
		}
		families[t.Family] = true
		detail, pkg, err := KeyringCheck(KeyringDir(), t.Family)
		r := doctor.Of("sandbox: "+t.Family+" keyring", err, detail, "apt-get install "+pkg)
		if err != nil {
			r.Package = pkg
		}
		out = append(out, r)
	}
	return out
}

// mirrorChecks: each target's mirror serves its suite.
func mirrorChecks(ctx context.Context, _ doctor.Env) []doctor.Result {
	var out []doctor.Result
	for _, name := range target.BuiltinNames() {
		t, _ := target.Builtin(name)
		if t.Bootstrap.Tool == "" {
			out = append(out, doctor.Fail("sandbox: "+name, errors.New("no bootstrap recipe: rpm distributions cannot be made without a registry"), "build "+name+" with --runner dagger"))
			continue
		}
		base, err := mirror.Host().Expand(t.Bootstrap.Mirror)
		if err == nil {
			err = reachable(ctx, base+"/dists/"+t.Bootstrap.Suite+"/Release")
		}
		out = append(out, doctor.Of("sandbox: "+name+" mirror", err, base+" serves "+t.Bootstrap.Suite,
			"make the mirror reachable, or set "+mirrorHint(t.Bootstrap.Mirror)+"bootstrap.mirror in a custom target"))
	}
	return out
}

// mirrorHint names the variable that sets an archive reference, if it is one.
func mirrorHint(ref string) string {
	if name, _, ok := mirror.Ref(ref); ok {
		return mirror.EnvVar(name) + ", or "
	}
	return ""
}

func reachable(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// KeyringDir is where Debian-family hosts keep archive keyrings;
// $COACH_KEYRING_DIR replaces it in tests.
func KeyringDir() string {
	if d := os.Getenv("COACH_KEYRING_DIR"); d != "" {
		return d
	}
	return "/usr/share/keyrings"
}

// archiveKeyring is the keyring mmdebstrap needs to trust a family's
// archive, and the package that ships it (on Debian and Ubuntu alike).
func archiveKeyring(family string) (file, pkg string, ok bool) {
	switch family {
	case "debian":
		return "debian-archive-keyring.gpg", "debian-archive-keyring", true
	case "ubuntu":
		return "ubuntu-archive-keyring.gpg", "ubuntu-keyring", true
	}
	return "", "", false
}

// KeyringCheck says whether the archive keyring of a target's family is
// in dir: without it mmdebstrap cannot verify the mirror (an Ubuntu
// runner lacks Debian's, a Debian host Ubuntu's).
func KeyringCheck(dir, family string) (detail, pkg string, err error) {
	file, pkg, ok := archiveKeyring(family)
	if !ok {
		return "no keyring needed", "", nil
	}
	p := filepath.Join(dir, file)
	if _, err := os.Stat(p); err != nil {
		return "", pkg, fmt.Errorf("%s is missing: mmdebstrap cannot verify the %s archive", p, family)
	}
	return p + " verifies the archive", pkg, nil
}

// ProcDir is /proc, or $COACH_PROC_DIR in tests.
func ProcDir() string {
	if d := os.Getenv("COACH_PROC_DIR"); d != "" {
		return d
	}
	return "/proc"
}

// UsernsRestricted reports whether AppArmor keeps unprivileged users
// from making user namespaces (Ubuntu 23.10 and later, 24.04 runners):
// then bubblewrap fails as a user, unless run as root or given a profile.
func UsernsRestricted(proc string) bool {
	b, err := os.ReadFile(filepath.Join(proc, "sys/kernel/apparmor_restrict_unprivileged_userns"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
