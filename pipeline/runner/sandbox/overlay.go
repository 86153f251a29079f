package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// A component builds in its target's base root (the essentials and the
// toolchain, made once with mmdebstrap) with its own build packages added
// as an overlay: apt installs them, in a sandbox over the base, once per
// base and package set. What apt wrote (the overlay's upper directory) is
// then laid over a tree of hard links to the base's files, so that the
// environment is one directory as a root filesystem is, and the base's
// bytes are on disk once however many environments share them. A
// component's layer key covers its own environment, not the packages of
// the other components of the project.

// overlaySchema is mixed into an overlay's key; bump it when the way one
// is made changes.
const overlaySchema = 1

// EnvKey is the identity of the environment a component with packages
// builds in: the base root's key alone without packages, else the key of
// the overlay of packages over that base.
func EnvKey(t target.Target, arch string, packages []string) string {
	base := Key(t, arch, nil)
	pkgs := runner.PackageSet(packages)
	if len(pkgs) == 0 {
		return base
	}
	return digest.JSON(struct {
		Schema   int
		Base     string
		Packages []string
	}{overlaySchema, base, pkgs})
}

// OverlayInfo is stored in an environment made as an overlay (as
// RootfsInfo is in a base root).
type OverlayInfo struct {
	RootfsInfo
	// Base is the base root's key.
	Base string `json:"base"`
	// Installed are the packages apt added to the base, each
	// name:arch=version: what the package set resolved to.
	Installed []string `json:"installed"`
}

// packageName is a Debian package name, with an architecture qualifier
// allowed (libc6-dev:arm64).
var packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$`)

// ArchivesDir is the directory of the roots' directory that keeps the
// packages apt downloaded for environments, a directory per suite and
// architecture, so that environments sharing packages download them once.
const ArchivesDir = "apt-archives"

// envDirPart marks an environment's directory name: <target>-env-<key>.
const envDirPart = "-env-"

// IsEnvironment reports whether a directory of the roots' directory is an
// environment made as an overlay (not a base or a clean root).
func IsEnvironment(name string) bool { return strings.Contains(name, envDirPart) }

// environment returns the environment of packages over the base root at
// base (whose key is baseKey), making it if needed.
func (r *Rootfs) environment(ctx context.Context, t target.Target, arch, base string, packages []string) (string, error) {
	pkgs := runner.PackageSet(packages)
	key := EnvKey(t, arch, pkgs)
	dir := filepath.Join(r.Dir, t.Name+envDirPart+strings.TrimPrefix(key, "sha256:")[:16])
	ready, unlock, err := r.claim(ctx, dir)
	if err != nil || ready {
		return dir, err
	}
	defer unlock()
	for _, p := range pkgs {
		if !packageName.MatchString(p) {
			return "", fmt.Errorf("target %s: %q is not a package name", t.Name, p)
		}
	}
	start := time.Now()
	what := fmt.Sprintf("installing %s over the %s %s base root", strings.Join(pkgs, " "), t.Bootstrap.Suite, debArch(arch))
	if r.Logger != nil {
		r.Logger.Info("making build environment (once per target and package set)", "target", t.Name, "arch", arch, "packages", strings.Join(pkgs, ","), "dir", dir)
	}
	r.Events.Emit(event.Event{Kind: event.RootfsStarted, Target: t.Name, Message: what})
	made := errors.New("interrupted")
	defer func() {
		e := event.Event{Kind: event.RootfsFinished, Target: t.Name, Seconds: time.Since(start).Seconds(), Message: "build environment " + strings.Join(pkgs, " ")}
		if made != nil {
			e.Error = made.Error()
		}
		r.Events.Emit(e)
	}()
	remove := func(path string) { removeRoot(ctx, r.Dir, path) }
	remove(dir)
	tmp := dir + fmt.Sprintf(".partial-%d", os.Getpid())
	remove(tmp)
	installed, err := r.installOverlay(ctx, t, arch, base, tmp, pkgs)
	if err != nil {
		remove(tmp)
		made = err
		if strings.Contains(err.Error(), "No space left on device") {
			return "", fmt.Errorf("make the %s build environment with %s in %s: %w", t.Name, strings.Join(pkgs, " "), r.Dir, ErrNoSpace)
		}
		return "", fmt.Errorf("make the %s build environment with %s: %w", t.Name, strings.Join(pkgs, " "), err)
	}
	root := filepath.Join(tmp, "root")
	data, _ := json.MarshalIndent(OverlayInfo{
		RootfsInfo: RootfsInfo{Target: t.Name, Arch: arch, Suite: t.Bootstrap.Suite, Mirror: t.Bootstrap.Mirror, Packages: pkgs, Key: key, CreatedAt: time.Now(), Seconds: time.Since(start).Seconds()},
		Base:       Key(t, arch, nil), Installed: installed,
	}, "", "  ")
	os.Remove(filepath.Join(root, InfoFile)) // the base's, linked
	if err := os.WriteFile(filepath.Join(root, InfoFile), data, 0o644); err == nil {
		err = durable.Publish(root, dir)
	}
	remove(tmp)
	if err != nil {
		made = err
		remove(dir)
		return "", err
	}
	made = nil
	if r.Logger != nil {
		r.Logger.Info("made build environment", "target", t.Name, "packages", strings.Join(pkgs, ","), "installed", len(installed), "seconds", time.Since(start).Round(100*time.Millisecond).Seconds(), "dir", dir)
	}
	return dir, nil
}

// installedLines are the lines of the install script's output that name
// a package it added.
const installedMark = "coach-installed "

func parseInstalled(out string) []string {
	var pkgs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), installedMark); ok && p != "" {
			pkgs = append(pkgs, p)
		}
	}
	slices.Sort(pkgs)
	return pkgs
}
