// Package mirror names package archives without writing their hosts down.
//
// Definitions and targets refer to an archive by name: a software version's
// url may be written `{{mirror "debian"}}/pool/main/z/zlib/...`, which loads as
// `mirror://debian/pool/main/z/zlib/...` (the form kept in lock files, the
// same on every machine), and the Debian targets bootstrap from
// `mirror://debian`. Only when something is fetched is the name looked up:
// in $COACH_MIRROR_<NAME> (upper case, '-' as '_'), else in the host's apt
// sources, where an archive's name is the last element of its URI's path
// (http://<host>/debian is "debian", http://<host>/debian-security is
// "debian-security").
package mirror

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"text/template"
)

// Scheme is the URL scheme of an archive reference.
const Scheme = "mirror"

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)

// ValidName reports whether name can name an archive.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Render expands {{mirror "name"}} in s to mirror://name. Strings without
// a template are returned as they are.
func Render(s string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	tmpl, err := template.New("url").Option("missingkey=error").Funcs(template.FuncMap{
		"mirror": func(name string) (string, error) {
			if !ValidName(name) {
				return "", fmt.Errorf("mirror name %q: use lower-case letters, digits, '.' and '-'", name)
			}
			return Scheme + "://" + name, nil
		},
	}).Parse(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Ref splits an archive reference mirror://name/path into name and path.
func Ref(s string) (name, rest string, ok bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != Scheme || !ValidName(u.Host) {
		return "", "", false
	}
	return u.Host, u.Path, true
}

// Set maps archive names to base URLs.
type Set struct {
	// Env looks up environment variables; nil means os.Getenv.
	Env func(string) string
	// AptDir is the apt configuration directory; empty means /etc/apt.
	AptDir string

	once sync.Once
	apt  map[string]string
}

var host = &Set{}

// Host is the set of the environment and this host's apt sources.
func Host() *Set { return host }

// EnvVar is the variable that sets the base URL of the named archive.
func EnvVar(name string) string {
	return "COACH_MIRROR_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// Base returns the base URL of the named archive, without a trailing slash.
func (s *Set) Base(name string) (string, error) {
	env := s.Env
	if env == nil {
		env = os.Getenv
	}
	if v := env(EnvVar(name)); v != "" {
		return strings.TrimSuffix(v, "/"), nil
	}
	s.once.Do(func() {
		dir := s.AptDir
		if dir == "" {
			dir = "/etc/apt"
		}
		s.apt = AptArchives(dir)
	})
	if v, ok := s.apt[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("no %q package archive is configured: set %s to its base URL (for example http://<your mirror>/%s), or add it to the host's apt sources", name, EnvVar(name), name)
}

// Expand turns an archive reference into the URL to fetch; any other string
// is returned as it is.
func (s *Set) Expand(ref string) (string, error) {
	name, rest, ok := Ref(ref)
	if !ok {
		if strings.HasPrefix(ref, Scheme+":") {
			return "", fmt.Errorf("%q is not an archive reference of the form mirror://<name>/<path>", ref)
		}
		return ref, nil
	}
	base, err := s.Base(name)
	if err != nil {
		return "", err
	}
	return base + rest, nil
}

// AptArchives reads the URIs of the deb and deb-src entries of an apt
// configuration directory (sources.list, sources.list.d/*.list and *.sources)
// and names each by the last element of its path. The first entry of a name
// wins.
func AptArchives(dir string) map[string]string {
	out := map[string]string{}
	add := func(uri string) {
		uri = strings.TrimSuffix(uri, "/")
		u, err := url.Parse(uri)
		if err != nil || u.Scheme == "" || u.Scheme == "cdrom" {
			return
		}
		name := filepath.Base(u.Path)
		if !ValidName(name) {
			return
		}
		if _, ok := out[name]; !ok {
			out[name] = uri
		}
	}
	lists, _ := filepath.Glob(filepath.Join(dir, "sources.list.d", "*.list"))
	for _, f := range append([]string{filepath.Join(dir, "sources.list")}, lists...) {
		eachLine(f, func(line string) {
			fields := strings.Fields(line)
			if len(fields) < 2 || (fields[0] != "deb" && fields[0] != "deb-src") {
				return
			}
			fields = fields[1:]
			if strings.HasPrefix(fields[0], "[") { // [ options ]
				for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
					fields = fields[1:]
				}
				if len(fields) < 2 {
					return
				}
				fields = fields[1:]
			}
			add(fields[0])
		})
	}
	deb822, _ := filepath.Glob(filepath.Join(dir, "sources.list.d", "*.sources"))
	for _, f := range deb822 {
		enabled := true
		var uris []string
		flush := func() {
			if enabled {
				for _, u := range uris {
					add(u)
				}
			}
			enabled, uris = true, nil
		}
		eachLine(f, func(line string) {
			if strings.TrimSpace(line) == "" {
				flush()
				return
			}
			key, val, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, " ") {
				return
			}
			switch strings.ToLower(strings.TrimSpace(key)) {
			case "uris":
				uris = append(uris, strings.Fields(val)...)
			case "enabled":
				enabled = strings.TrimSpace(strings.ToLower(val)) != "no"
			}
		})
		flush()
	}
	return out
}

func eachLine(path string, fn func(string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(strings.TrimSpace(line), "#") {
			fn(line)
		}
	}
}
