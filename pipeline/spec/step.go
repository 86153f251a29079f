package spec

import (
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

func (s *Step) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!str" {
			d.fail(n, path, "write the command as a string, or as a list of arguments", "build step must be a command, not %s", describe(n))
			return
		}
		s.Run = n.Value
	case yaml.SequenceNode:
		var argv []string
		d.decode(n, reflectOf(&argv), path+".argv")
		s.Argv = argv
	case yaml.MappingNode:
		// stepFields has Step's fields but not its decodeNode method, so the
		// mapping form is decoded as a plain strict struct.
		type stepFields Step
		var f stepFields
		d.decode(n, reflectOf(&f), path)
		*s = Step(f)
	default:
		d.fail(n, path, "write the command as a string, or as a list of arguments", "build step must be a command, not %s", describe(n))
	}
}

// ShellJoin renders argv as one POSIX shell command line, quoting each word
// that needs it.
func ShellJoin(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// StepVars are the values build-step templates may use, e.g.
// "./configure --prefix={{.Embedded}}".
type StepVars struct {
	Name       string // component name
	Version    string // resolved version
	InstallDir string // the project's install_dir, e.g. /opt/hello
	Embedded   string // InstallDir + "/embedded"
	Jobs       int    // parallel jobs for make -j
	Target     string // target name, e.g. debian-12
	Format     string // deb or rpm
	Arch       string // Go architecture name, e.g. amd64
	Multiarch  string // multiarch triplet, e.g. x86_64-linux-gnu
}

// Expand renders a definition template with vars. Unknown fields are errors.
func Expand(text string, vars StepVars) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := template.New("").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, vars); err != nil {
		return "", err
	}
	return b.String(), nil
}

// sampleVars is used to check templates at validation time.
var sampleVars = StepVars{Name: "x", Version: "1.0.0", InstallDir: "/opt/x", Embedded: "/opt/x/embedded", Jobs: 2, Target: "debian-12", Format: "deb", Arch: "amd64", Multiarch: "x86_64-linux-gnu"}

// Duration is a validated timeout as a duration; 0 when none is set.
func Duration(text string) time.Duration {
	d, err := time.ParseDuration(text)
	if err != nil || d < 0 {
		return 0
	}
	return d
}
