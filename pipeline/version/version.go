// Package version turns a project's version setting into the semver
// version it packages: a version as written, "git" (git describe of the
// project's repository, mapped to a version that sorts correctly in dpkg
// and rpm), or a template over git's and the environment's values.
package version

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Git is what git says about the commit a project is built from.
type Git struct {
	Tag      string // the nearest version tag, without its "v"; "" when there is none
	Distance int    // commits since Tag (since the root when there is no tag)
	Commit   string // the commit's id, abbreviated to 12 digits
	Dirty    bool   // tracked files differ from the commit
}

// describePattern reads git describe --long --dirty: <tag>-<n>-g<id>[-dirty].
var describePattern = regexp.MustCompile(`^(.+)-(\d+)-g([0-9a-f]{4,40})(-dirty)?$`)

// ParseDescribe reads the output of git describe --tags --long --dirty.
func ParseDescribe(out string) (Git, error) {
	m := describePattern.FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		return Git{}, fmt.Errorf("git describe said %q, not <tag>-<n>-g<commit>", strings.TrimSpace(out))
	}
	n, _ := strconv.Atoi(m[2])
	return Git{Tag: strings.TrimPrefix(m[1], "v"), Distance: n, Commit: m[3], Dirty: m[4] != ""}, nil
}

// Semver maps the commit to a version:
//
//	at tag v1.4.0                1.4.0
//	5 commits after v1.4.0       1.4.1-dev.5+g<commit>   (after 1.4.0, before 1.4.1)
//	3 commits after v2.0.0-rc.1  2.0.0-rc.1.dev.3+g<commit> (after rc.1, before rc.2)
//	no tag, 12 commits           0.0.0-dev.12+g<commit>
//	uncommitted changes          the same, with .dirty in the build metadata
//
// Build metadata does not take part in ordering, so two commits at the
// same distance from a tag sort equal: build from one branch.
func (g Git) Semver() (string, error) {
	base := semver.New(0, 0, 0, "", "")
	if g.Tag != "" {
		v, err := semver.StrictNewVersion(g.Tag)
		if err != nil {
			return "", fmt.Errorf("tag v%s is not a semver version (major.minor.patch[-prerelease])", g.Tag)
		}
		base = v
	}
	meta := []string{}
	if g.Distance > 0 || g.Tag == "" {
		meta = append(meta, "g"+g.Commit)
	}
	if g.Dirty {
		meta = append(meta, "dirty")
	}
	if g.Distance == 0 && g.Tag != "" {
		v := *base
		v, _ = v.SetMetadata(strings.Join(meta, "."))
		return v.String(), nil
	}
	var pre string
	if base.Prerelease() != "" {
		pre = fmt.Sprintf("%s.dev.%d", base.Prerelease(), g.Distance)
		v, err := semver.NewVersion(fmt.Sprintf("%d.%d.%d-%s", base.Major(), base.Minor(), base.Patch(), pre))
		if err != nil {
			return "", err
		}
		base = v
	} else {
		next := base.IncPatch()
		if g.Tag == "" {
			next = *base
		}
		pre = fmt.Sprintf("dev.%d", g.Distance)
		v, err := next.SetPrerelease(pre)
		if err != nil {
			return "", err
		}
		base = &v
	}
	v, err := base.SetMetadata(strings.Join(meta, "."))
	if err != nil {
		return "", err
	}
	return v.String(), nil
}

// ReadGit describes the commit checked out in dir. Tags that look like
// versions (v1.2.3 or 1.2.3) count; others are ignored.
func ReadGit(dir string) (Git, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := exec.LookPath("git"); err != nil {
		return Git{}, errors.New("version: git needs git on this machine")
	}
	out, err := git("describe", "--tags", "--long", "--dirty", "--abbrev=12", "--match", "v[0-9]*", "--match", "[0-9]*")
	if err == nil {
		return ParseDescribe(out)
	}
	if !strings.Contains(err.Error(), "No names found") && !strings.Contains(err.Error(), "No tags can describe") && !strings.Contains(err.Error(), "cannot describe") {
		return Git{}, err
	}
	// No version tag yet: count from the root.
	count, err := git("rev-list", "--count", "HEAD")
	if err != nil {
		return Git{}, err
	}
	commit, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return Git{}, err
	}
	n, _ := strconv.Atoi(count)
	g := Git{Distance: n, Commit: commit}
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		g.Dirty = true
	}
	return g, nil
}

// IsDynamic reports whether a version setting is computed rather than
// written out: "git" or a template.
func IsDynamic(setting string) bool {
	return setting == "git" || strings.Contains(setting, "{{")
}

// TemplateVars are what a version template sees.
type TemplateVars struct {
	Git *Git
	// Semver is git's mapping ("git" gives exactly this).
	Semver string
	// Date is the build date, yyyymmdd in UTC (SOURCE_DATE_EPOCH when set).
	Date string
	Env  map[string]string
}

// CheckTemplate parses a version template without running git, for the
// definition checks.
func CheckTemplate(setting string) error {
	_, err := template.New("version").Option("missingkey=error").Parse(setting)
	return err
}

// Resolve computes the version a setting stands for in the repository at
// dir; now is the build time. The result must be semver.
func Resolve(setting, dir string, now time.Time) (string, error) {
	if !IsDynamic(setting) {
		return setting, nil
	}
	g, err := ReadGit(dir)
	if err != nil {
		return "", fmt.Errorf("version %s: %w", setting, err)
	}
	mapped, err := g.Semver()
	if err != nil {
		return "", fmt.Errorf("version %s: %w", setting, err)
	}
	if setting == "git" {
		return mapped, nil
	}
	tmpl, err := template.New("version").Option("missingkey=error").Parse(setting)
	if err != nil {
		return "", fmt.Errorf("version %q: %w", setting, err)
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, TemplateVars{Git: &g, Semver: mapped, Date: now.UTC().Format("20060102"), Env: env}); err != nil {
		return "", fmt.Errorf("version %q: %w", setting, err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(b.String()), "v")
	if _, err := semver.StrictNewVersion(v); err != nil {
		return "", fmt.Errorf("version %q gives %q, which is not semver", setting, v)
	}
	return v, nil
}
