package pkg

import (
	"cmp"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// attrs are the owner, group and mode one packaged path gets.
type attrs struct {
	owner, group string
	mode         fs.FileMode
	modeSet      bool // a package.files entry gave the mode
}

// treeAttrs gives a path under install_dir (rel is "." for install_dir
// itself) its owner, group and mode: the project's owner and group, then
// each package.files entry that matches, in order.
func treeAttrs(p *spec.Project, rel string, mode fs.FileMode) (attrs, error) {
	user, group := p.Package.FileOwner()
	a := attrs{owner: user, group: group, mode: mode}
	for _, f := range p.Package.Files {
		ok := f.Path == rel
		if !ok && f.Path != "." {
			ok, _ = doublestar.Match(f.Path, rel)
		}
		if !ok {
			continue
		}
		if f.Owner != "" {
			a.owner = f.Owner
		}
		if f.Group != "" {
			a.group = f.Group
		}
		if f.Mode != "" {
			m, err := spec.ParseMode(f.Mode)
			if err != nil {
				return a, err
			}
			a.mode, a.modeSet = m, true
		}
	}
	return a, nil
}

// accounts are the users and groups the package's files name that are not
// root, and package.users: the hooks create them.
func accounts(p *spec.Project) (users map[string]string, groups []string) {
	users = map[string]string{}
	seen := map[string]bool{"root": true}
	addGroup := func(g string) {
		if !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	user, group := p.Package.FileOwner()
	addGroup(group)
	if user != "root" {
		users[user] = group
	}
	for _, u := range p.Package.Users {
		g := cmp.Or(u.Group, u.Name)
		addGroup(g)
		if _, ok := users[u.Name]; !ok {
			users[u.Name] = g
		}
	}
	for _, f := range p.Package.Files {
		if f.Group != "" {
			addGroup(f.Group)
		}
		if f.Owner != "" && f.Owner != "root" {
			if _, ok := users[f.Owner]; !ok {
				g := f.Group
				if g == "" || g == "root" {
					g = f.Owner
				}
				addGroup(g)
				users[f.Owner] = g
			}
		}
	}
	return users, groups
}

// accountScript is the shell that creates the package's system users and
// groups when they are missing, so the package manager can give the
// files their owners as it unpacks them. It is idempotent: an upgrade or
// a reinstall finds them and does nothing. deb uses adduser (the package
// pre-depends on it), rpm groupadd and useradd (shadow-utils). Neither
// removes them on purge: files the service wrote may still carry their
// ids, and a later user would inherit them (Debian's and Fedora's
// policy).
func accountScript(p *spec.Project, format string) string {
	users, groups := accounts(p)
	if len(users) == 0 && len(groups) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# coach: the package's system users and groups (package.owner, package.group, package.files, package.users).\n")
	q := spec.ShellJoin
	for _, g := range groups {
		if format == target.FormatRPM {
			fmt.Fprintf(&b, "getent group %s >/dev/null || groupadd -r %s\n", q([]string{g}), q([]string{g}))
		} else {
			fmt.Fprintf(&b, "getent group %s >/dev/null || addgroup --system --quiet %s\n", q([]string{g}), q([]string{g}))
		}
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		g := users[u]
		gecos := p.Name + " system user"
		if format == target.FormatRPM {
			fmt.Fprintf(&b, "getent passwd %s >/dev/null || useradd -r -g %s -d /nonexistent -M -s /sbin/nologin -c %s %s\n",
				q([]string{u}), q([]string{g}), q([]string{gecos}), q([]string{u}))
		} else {
			fmt.Fprintf(&b, "getent passwd %s >/dev/null || adduser --system --quiet --ingroup %s --no-create-home --home /nonexistent --shell /usr/sbin/nologin --gecos %s %s\n",
				q([]string{u}), q([]string{g}), q([]string{gecos}), q([]string{u}))
		}
	}
	return b.String()
}

// preinstWithAccounts writes the preinst (deb) or %pre (rpm): the account
// script, then the project's own preinst when it has one. The project's
// must then be a shell script, since both run as one.
func preinstWithAccounts(p *spec.Project, format, projectHook, work string) (string, error) {
	script := accountScript(p, format)
	if script == "" {
		return projectHook, nil
	}
	shebang, body := "#!/bin/sh", ""
	if projectHook != "" {
		b, err := os.ReadFile(projectHook)
		if err != nil {
			return "", err
		}
		first, rest, _ := strings.Cut(string(b), "\n")
		interp := strings.Fields(strings.TrimPrefix(first, "#!"))
		name := ""
		if strings.HasPrefix(first, "#!") && len(interp) > 0 {
			name = path.Base(interp[0])
			if name == "env" && len(interp) > 1 {
				name = interp[1]
			}
		}
		if name != "sh" && name != "bash" && name != "dash" {
			return "", fmt.Errorf("preinst %s must be a shell script (#!/bin/sh or #!/bin/bash) when the package creates users: coach puts the account creation in front of it", projectHook)
		}
		shebang, body = first, rest
	}
	out := filepath.Join(work, "preinst."+format)
	text := shebang + "\n" + script + body
	if body == "" {
		text += "exit 0\n"
	}
	return out, os.WriteFile(out, []byte(text), 0o755)
}

// extraFiles copies the project's extra_files out of the repository,
// through a root confined to it (a symlink in the repository cannot bring
// a file of this machine into the package), into work, and lists them.
// MaxExtraFileBytes bounds an extra file, which packaging reads whole:
// a unit, a default file, a completion script are kilobytes.
const MaxExtraFileBytes = 256 << 20

func extraFiles(p *spec.Project, t target.Target, repo, work string, info func(fs.FileMode) *files.ContentFileInfo) (files.Contents, error) {
	if len(p.Package.ExtraFiles) == 0 {
		return nil, nil
	}
	root, err := confine.Open(repo)
	if err != nil {
		return nil, fmt.Errorf("extra files: %w", err)
	}
	defer root.Close()
	var out files.Contents
	for i, e := range p.Package.ExtraFiles {
		if !e.For(t) {
			continue
		}
		if e.Link != "" {
			out = append(out, &files.Content{Source: e.Link, Destination: path.Clean(e.Destination), Type: files.TypeSymlink, FileInfo: info(0o777)})
			continue
		}
		mode := fs.FileMode(0o644)
		if e.Mode != "" {
			if mode, err = spec.ParseMode(e.Mode); err != nil {
				return nil, err
			}
		}
		body, err := confine.ReadFile(root, filepath.FromSlash(path.Clean(e.Source)), MaxExtraFileBytes)
		if err != nil {
			return nil, fmt.Errorf("extra file %s: %w", e.Source, err)
		}
		copyPath := filepath.Join(work, fmt.Sprintf("extra-%d", i))
		if err := os.WriteFile(copyPath, body, 0o644); err != nil {
			return nil, err
		}
		typ := files.TypeFile
		if e.Config {
			typ = files.TypeConfigNoReplace
		}
		out = append(out, &files.Content{Source: copyPath, Destination: path.Clean(e.Destination), Type: typ, FileInfo: info(mode)})
	}
	return out, nil
}
