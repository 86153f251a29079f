package health

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report for a person: every problem with what, where,
// why and how to fix it, then the system libraries and the runtime
// dependencies they imply.
func (r *Report) WriteText(w io.Writer) {
	status := "passed"
	if !r.OK() {
		status = "FAILED"
	}
	fmt.Fprintf(w, "health check %s for %s: %d ELF files of %d (%d ignored), %d errors, %d warnings\n",
		status, r.Target, r.ELF, r.Files, r.Ignored, r.Errors, r.Warnings)
	for _, p := range r.Problems {
		who := ""
		if p.Component != "" {
			who = " (component " + p.Component + ")"
		}
		fmt.Fprintf(w, "%s %s%s: %s\n", strings.ToUpper(p.Severity), p.File, who, p.Why)
		fmt.Fprintf(w, "    fix: %s\n", p.Fix)
	}
	if r.GlibcFloor != "" {
		fmt.Fprintf(w, "glibc floor: %s\n", r.GlibcFloor)
	}
	if len(r.SystemLibraries) > 0 {
		fmt.Fprintln(w, "system libraries:")
		for _, l := range r.SystemLibraries {
			where := l.Path
			if where == "" {
				where = "(allowed by name)"
			}
			pkg := ""
			if l.Package != "" {
				pkg = " [" + l.Package + "]"
			}
			fmt.Fprintf(w, "    %s => %s%s %s\n", l.Soname, where, pkg, strings.Join(l.Versions, " "))
		}
	}
	deps := strings.Join(r.Dependencies, ", ")
	if deps == "" {
		deps = "none"
	}
	fmt.Fprintf(w, "runtime dependencies for %s: %s\n", r.Target, deps)
}
