package pkg

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2/files"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// elfInfo says whether a file of the tree is an ELF executable or shared
// library, and for which machine.
func elfInfo(tree *os.Root, rel string) (exe, shared bool, machine elf.Machine) {
	fh, err := tree.Open(rel)
	if err != nil {
		return false, false, 0
	}
	defer fh.Close()
	f, err := elf.NewFile(fh)
	if err != nil {
		return false, false, 0
	}
	defer f.Close()
	machine = f.Machine
	interp := false
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp = true
		}
	}
	switch {
	case f.Type == elf.ET_EXEC || (f.Type == elf.ET_DYN && interp):
		return true, false, machine
	case f.Type == elf.ET_DYN:
		return false, true, machine
	}
	return false, false, machine
}

// stripFor is the strip that reads machine's files: the host's strip for
// its own machine, else binutils' cross strip for it.
func stripFor(machine elf.Machine) (string, error) {
	if machine == target.LookupArch(runtime.GOARCH).Machine || machine == 0 {
		if p, err := exec.LookPath("strip"); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("packaging strips binaries and needs strip (apt-get install binutils), or set package.strip: false")
	}
	a, ok := target.ArchOfMachine(machine)
	if !ok {
		return "", fmt.Errorf("no strip for %s files: set package.strip: false", machine)
	}
	p, err := exec.LookPath(a.Strip())
	if err != nil {
		return "", fmt.Errorf("stripping %s files needs %s (apt-get install %s), or set package.strip: false", machine, a.Strip(), a.Binutils)
	}
	return p, nil
}

// stripped writes a stripped copy of an ELF file into dir, as Debian's
// dh_strip does: .comment and .note sections dropped, and shared
// libraries stripped of what linking them does not need.
func stripped(tree *os.Root, rel, dir string, shared bool, machine elf.Machine) (string, error) {
	strip, err := stripFor(machine)
	if err != nil {
		return "", err
	}
	// strip reads the file through a descriptor opened beneath the tree,
	// never by a path it resolves itself.
	in, err := tree.Open(rel)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dst, err := os.CreateTemp(dir, "strip-*")
	if err != nil {
		return "", err
	}
	dst.Close()
	args := []string{"--remove-section=.comment", "--remove-section=.note", "--enable-deterministic-archives"}
	if shared {
		args = append(args, "--strip-unneeded")
	} else {
		args = append(args, "--strip-all")
	}
	cmd := exec.Command(strip, append(args, "-o", dst.Name(), "--", "/dev/fd/3")...)
	cmd.ExtraFiles = []*os.File{in}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("strip %s: %v: %s", rel, err, out)
	}
	return dst.Name(), nil
}

// docFiles are /usr/share/doc/<name>/copyright and, for deb,
// changelog.Debian.gz: the package's license summary, and one changelog
// entry for this version.
func docFiles(p *spec.Project, t target.Target, repo string, summary []byte, notices []string, mtime time.Time, dir string) (files.Contents, error) {
	doc := "/usr/share/doc/" + p.Name
	copyright := filepath.Join(dir, "copyright")
	common := ""
	if f, ok := commonLicenses[p.License]; ok {
		common = fmt.Sprintf(" On Debian systems, the full text of the %s license can be found in\n /usr/share/common-licenses/%s.\n .\n", p.License, f)
	}
	// The maintainer packages; the copyright is the authors': the
	// project's, and each component's own, whose notices are in its
	// license files (the first ones found are quoted).
	holders := fmt.Sprintf("the authors of %s and of each component it contains; each component's\n copyright notices are in its license files under %s/LICENSES/<component>/", p.Name, p.InstallDir)
	for _, n := range notices {
		holders += "\n " + n
	}
	text := fmt.Sprintf("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: %s\nUpstream-Contact: %s\nSource: %s\n\nFiles: *\nCopyright: %s\nLicense: %s\n%s See %s/LICENSES/ for the license texts of every component:\n .\n%s",
		p.Name, p.Maintainer, orNone(p.Homepage), holders, p.License, common, p.InstallDir, indent(string(summary)))
	if err := os.WriteFile(copyright, []byte(text), 0o644); err != nil {
		return nil, err
	}
	docType := files.TypeFile
	if t.Format == target.FormatRPM {
		docType = files.TypeRPMDoc
	}
	out := files.Contents{{Source: copyright, Destination: doc + "/copyright", Type: docType}}
	if t.Format == target.FormatDeb {
		rels, err := releases(p, t, repo, mtime)
		if err != nil {
			return nil, err
		}
		gz, err := debianChangelog(p, t, rels)
		if err != nil {
			return nil, err
		}
		changelog := filepath.Join(dir, "changelog.Debian.gz")
		if err := os.WriteFile(changelog, gz, 0o644); err != nil {
			return nil, err
		}
		out = append(out, &files.Content{Source: changelog, Destination: doc + "/changelog.Debian.gz", Type: files.TypeFile})
	}
	return out, nil
}

// copyrightNoticeLine is a copyright notice in a license file: "Copyright
// (C) 1995-2022 Jean-loup Gailly", "Copyright 2019 ...", "© ...".
var copyrightNoticeLine = regexp.MustCompile(`(?i)^\s*(copyright\s+(\(c\)|©|[0-9]{4})|©\s*[0-9]{4}|\(c\)\s*[0-9]{4})`)

// maxNotices bounds how many notices the copyright file quotes.
const maxNotices = 40

// copyrightNotices are the copyright notices of the tree's license files
// (LICENSES/<component>/*), each once, in order of component and file,
// read through the tree's root with a bound on each file: the tree is
// what the build wrote.
func copyrightNotices(tree *os.Root) []string {
	var out []string
	seen := map[string]bool{}
	comps, err := fs.ReadDir(tree.FS(), "LICENSES")
	if err != nil {
		return nil
	}
	for _, c := range comps {
		if !c.IsDir() {
			continue
		}
		entries, _ := fs.ReadDir(tree.FS(), path.Join("LICENSES", c.Name()))
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := confine.ReadFile(tree, filepath.Join("LICENSES", c.Name(), e.Name()), confine.MaxTextBytes)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				line = strings.Join(strings.Fields(strings.TrimLeft(line, " \t*#/;")), " ")
				if !copyrightNoticeLine.MatchString(line) || seen[line] || len(line) > 200 {
					continue
				}
				seen[line] = true
				if out = append(out, line); len(out) == maxNotices {
					return out
				}
			}
		}
	}
	return out
}

// commonLicenses are the SPDX identifiers Debian ships texts of in
// /usr/share/common-licenses, and their file names there.
var commonLicenses = map[string]string{
	"Apache-2.0": "Apache-2.0", "GPL-2.0-only": "GPL-2", "GPL-2.0-or-later": "GPL-2", "GPL-3.0-only": "GPL-3",
	"GPL-3.0-or-later": "GPL-3", "LGPL-2.1-only": "LGPL-2.1", "LGPL-2.1-or-later": "LGPL-2.1", "LGPL-3.0-only": "LGPL-3",
	"LGPL-3.0-or-later": "LGPL-3", "MPL-2.0": "MPL-2.0", "Artistic-1.0": "Artistic", "BSD-3-Clause": "BSD", "CC0-1.0": "CC0-1.0",
}

// rpmChangelog writes the releases for the rpm's %changelog.
func rpmChangelog(p *spec.Project, t target.Target, repo string, mtime time.Time, dir string) (string, error) {
	rels, err := releases(p, t, repo, mtime)
	if err != nil {
		return "", err
	}
	return rpmChangelogFile(p, t, rels, dir)
}

// wrap folds text into lines of at most width characters.
func wrap(text string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func debVersion(v string) string { return strings.Replace(v, "-", "~", 1) }

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// indent formats text as a debian/copyright continuation block.
func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString(" .\n")
		} else {
			b.WriteString(" " + line + "\n")
		}
	}
	return b.String()
}

// extendedDescription says what the package embeds, when the project's
// description has no second paragraph.
func extendedDescription(p *spec.Project, names []string) string {
	return wrap(fmt.Sprintf("This package installs %s %s in %s, with its own builds of %s, so that it depends on nothing of the system beyond the C library.",
		p.Name, p.Version, p.InstallDir, strings.Join(names, ", ")), 72)
}
