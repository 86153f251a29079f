package pkg

import (
	"github.com/coach-build/coach/pipeline/doctor"
	"github.com/coach-build/coach/pipeline/target"
)

// What packaging runs on the host, and the tools to inspect its output.
func init() {
	foreign := target.LookupArch(target.Foreign())
	doctor.Register(
		doctor.Check{Name: "tool: strip", Group: doctor.Tools, Tool: "strip", Package: "binutils",
			Why: "strips the host architecture's binaries as they are packaged (package.strip)"},
		doctor.Check{Name: "tool: " + foreign.Strip(), Group: doctor.Tools, Tool: foreign.Strip(), Package: foreign.Binutils,
			Why: "strips " + foreign.Go + " binaries as they are packaged"},
		doctor.Check{Name: "tool: dpkg-deb", Group: doctor.Tools, Tool: "dpkg-deb", Package: "dpkg",
			Why: "for inspecting deb packages"},
		doctor.Check{Name: "tool: rpm", Group: doctor.Tools, Tool: "rpm", Package: "rpm",
			Why: "for inspecting rpm packages and checking their signatures"},
		doctor.Check{Name: "tool: lintian", Group: doctor.Tools, Tool: "lintian", Package: "lintian",
			Why: "for linting deb packages"},
	)
}
