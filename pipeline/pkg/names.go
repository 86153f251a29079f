package pkg

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/goreleaser/nfpm/v2/files"

	"github.com/coach-build/coach/pipeline/target"
)

// maxNameBytes is the longest path component dpkg and rpm can install:
// both unpack a file under a temporary name 9 bytes longer (dpkg's
// ".dpkg-new", rpm's ";" and 8 hex digits) before renaming it, and a
// Linux file name holds 255 bytes.
const maxNameBytes = 255 - 9

// maxPathBytes is the longest path they can install, for the same
// reason, within Linux's PATH_MAX of 4096 bytes with its NUL.
const maxPathBytes = 4096 - 1 - 9

// PathError lists the paths of a package that its format's tools would
// refuse, each with the reason.
type PathError struct {
	Format   string
	Problems []string
}

func (e *PathError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d paths cannot be packaged as %s:", len(e.Problems), e.Format)
	for i, p := range e.Problems {
		if i == 20 {
			fmt.Fprintf(&b, "\n\t... and %d more", len(e.Problems)-20)
			break
		}
		b.WriteString("\n\t" + p)
	}
	b.WriteString("\n\t(rename them in the build, or leave them out with package.exclude)")
	return b.String()
}

// checkPaths refuses, at packaging time, every path that the format's
// tools refuse only at build or install time, so that no package that
// cannot be installed is written (and vouched for by SHA256SUMS):
//   - a newline: dpkg-deb refuses it ("newline not allowed in pathname"),
//     and dpkg's file lists are one path a line; rpmbuild refuses a tab,
//     a newline and a carriage return ("Illegal character");
//   - a component over maxNameBytes or a path over maxPathBytes: dpkg and
//     rpm fail to unpack it (File name too long);
//   - a name that is not UTF-8: Debian Policy 10.10 requires UTF-8 names,
//     and rpm's file lists and tools assume it.
func checkPaths(contents files.Contents, format string) error {
	var problems []string
	for _, c := range contents {
		if c.Packager != "" && c.Packager != format {
			continue
		}
		p := path.Clean("/" + files.ToNixPath(c.Destination))
		if reason := pathProblem(p, format); reason != "" {
			problems = append(problems, fmt.Sprintf("%q: %s", p, reason))
		}
	}
	if len(problems) > 0 {
		return &PathError{Format: format, Problems: problems}
	}
	return nil
}

func pathProblem(p, format string) string {
	bad := "\n"
	tool := "dpkg-deb and dpkg refuse"
	if format == target.FormatRPM {
		bad, tool = "\t\n\r", "rpmbuild refuses"
	}
	if i := strings.IndexAny(p, bad); i >= 0 {
		return fmt.Sprintf("it holds the control character %q, which %s", p[i], tool)
	}
	if !utf8.ValidString(p) {
		return "it is not valid UTF-8 (Debian Policy 10.10; rpm's file lists are UTF-8)"
	}
	if len(p) > maxPathBytes {
		return fmt.Sprintf("it is %d bytes long; dpkg and rpm install paths of at most %d", len(p), maxPathBytes)
	}
	for _, part := range strings.Split(p, "/") {
		if len(part) > maxNameBytes {
			return fmt.Sprintf("its component %.20q... is %d bytes long; dpkg and rpm install names of at most %d (255 with their 9-byte temporary suffix)", part, len(part), maxNameBytes)
		}
	}
	return ""
}
