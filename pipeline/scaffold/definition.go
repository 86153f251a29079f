package scaffold

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Pin is the release a definition pins: its version, its URL as the user
// gave it (a mirror template stays one) and its sha256.
type Pin struct {
	Name, Version, URL, SHA256 string
	// License replaces what the licence files say, when set.
	License string
}

// Definition writes software/<name>.yaml for a release archive that
// Inspect read, with a schema modeline for editors.
func Definition(schemaDir string, p Pin, s *Source) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# yaml-language-server: $schema=../%s/software.schema.json\n", schemaDir)
	fmt.Fprintf(&b, "# %s: every field is in coach's docs/reference/definitions.md.\n", p.Name)
	fmt.Fprintf(&b, "# Written by coach new software from %s: %s.\n", path.Base(p.URL), describe(s.System))
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "# Note: %s.\n", n)
	}
	fmt.Fprintf(&b, "name: %s\n", p.Name)
	license := p.License
	switch {
	case license != "":
	case s.License != "":
		license = s.License
		var from []string
		for _, f := range s.LicenseFiles {
			if id := s.Licenses[f]; id != "" {
				from = append(from, f+": "+id)
			}
		}
		fmt.Fprintf(&b, "# The licence, from the texts of %s; check the sources' headers (\"only\" or \"or later\", files under other terms).\n", strings.Join(from, ", "))
	default:
		license = "LicenseRef-" + p.Name
		b.WriteString("# No licence text coach knows at the top of the source: give its SPDX identifier.\n")
	}
	fmt.Fprintf(&b, "license: %s\n", license)
	if len(s.LicenseFiles) > 0 {
		fmt.Fprintf(&b, "license_files: [%s]\n", strings.Join(quoteAll(s.LicenseFiles), ", "))
	} else {
		b.WriteString("# No LICENSE, LICENCE, COPYING or COPYRIGHT file at the top of the source:\n# name the files that carry the licence in license_files.\n")
	}
	b.WriteString("versions:\n")
	fmt.Fprintf(&b, "  - version: %s\n    url: %s\n    sha256: %s\n", YAMLString(p.Version), YAMLString(p.URL), p.SHA256)
	if s.RelativePath != "" {
		fmt.Fprintf(&b, "relative_path: %s\n", YAMLString(s.RelativePath))
	}
	if len(s.BuildPackages) > 0 {
		b.WriteString("build_packages:\n")
		for _, f := range []string{"deb", "rpm"} {
			if pk := s.BuildPackages[f]; len(pk) > 0 {
				fmt.Fprintf(&b, "  %s: [%s]\n", f, strings.Join(pk, ", "))
			}
		}
	}
	b.WriteString("build:\n")
	for _, st := range s.Steps {
		fmt.Fprintf(&b, "  - %s\n", YAMLString(st))
	}
	return b.String()
}

func describe(system string) string {
	switch system {
	case Autotools:
		return "a generated ./configure (plain make runs under the sandbox's job server)"
	case Autoreconf:
		return "configure.ac without a generated ./configure, so autoreconf runs first"
	case CMake:
		return "CMake"
	case Meson:
		return "Meson with Ninja"
	case Make:
		return "a plain Makefile"
	case Python:
		return "a Python project"
	case Go:
		return "a Go module"
	}
	return "no build system coach knows, so the build step says so and fails"
}

func quoteAll(in []string) []string {
	out := slices.Clone(in)
	for i, s := range out {
		out[i] = YAMLString(s)
	}
	return out
}

// YAMLString is s as a YAML scalar of a block (a mapping value or a
// sequence entry): plain when that reads back the same string, else
// single-quoted.
func YAMLString(s string) string {
	plain := s != "" && !strings.ContainsAny(s[:1], "-?:,[]{}#&*!|>'\"%@`") &&
		!strings.Contains(s, ": ") && !strings.Contains(s, " #") && !strings.HasSuffix(s, ":") &&
		!strings.ContainsAny(s, "\n\t") && strings.TrimSpace(s) == s && !looksLikeOtherType(s)
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// looksLikeOtherType: a plain scalar YAML would read as a number, a
// boolean or null.
func looksLikeOtherType(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n":
		return true
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' && r != 'e' && r != 'E' {
			return false
		}
	}
	return true
}
