package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// LibrariesFile lists, at a repository's root, the software libraries it
// builds with: other repositories whose software/ definitions it uses
// where it has none of its own (as an Omnibus project uses
// omnibus-software).
const LibrariesFile = "libraries.yaml"

// Libraries is the content of libraries.yaml.
type Libraries struct {
	Libraries []Library `yaml:"libraries" json:"libraries" doc:"software libraries, searched in order after the repository's own software/"`
}

// Library is one software library: a git repository at a ref, or a
// directory.
type Library struct {
	Name string `yaml:"name" json:"name" doc:"what the repository calls the library (in coach validate, plan and the lock file)"`
	Git  string `yaml:"git" json:"git,omitempty" doc:"git repository URL (https, ssh, file) whose software/ holds the definitions"`
	Ref  string `yaml:"ref" json:"ref,omitempty" doc:"branch, tag or full commit of the git repository (default HEAD); coach lock pins the commit it names"`
	Path string `yaml:"path" json:"path,omitempty" doc:"a directory holding software/, relative to this repository's root or absolute (a local checkout, for working on a library)"`

	pos map[string]Pos
}

// Where is the directory a path library names: its path, relative to the
// repository's root unless absolute.
func (l *Library) Where(root string) string {
	if filepath.IsAbs(l.Path) {
		return filepath.Clean(l.Path)
	}
	return filepath.Join(root, l.Path)
}

// At returns the position of a field of the library entry.
func (l *Library) At(path string) Pos { return position(LibrariesFile, l.pos, path) }

// LibraryRoot is a library as Load reads it: the directory that holds its
// software/, and a label for messages (name and commit).
type LibraryRoot struct {
	Name  string
	Dir   string
	Label string
	// Stale says how libraries.lock differs from it (empty: it does
	// not).
	Stale string
}

var libraryName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ReadLibraries reads root's libraries.yaml; without one, it returns
// nothing. Every problem is reported at once, with its position.
func ReadLibraries(root string) ([]Library, error) {
	data, err := os.ReadFile(filepath.Join(root, LibrariesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps problems
	if len(data) > MaxDefinitionSize {
		ps.add(Pos{File: LibrariesFile}, "list fewer libraries", "the file is %d bytes; it may be at most %d", len(data), MaxDefinitionSize)
		return nil, ps.err()
	}
	doc := parse(LibrariesFile, data, &ps)
	if doc == nil {
		return nil, ps.err()
	}
	var f Libraries
	d := decoder{file: LibrariesFile, root: "the libraries file", problems: &ps, pos: map[string]Pos{}}
	d.decode(doc, reflectOf(&f), "")
	seen := map[string]bool{}
	for i := range f.Libraries {
		l := &f.Libraries[i]
		p := fmt.Sprintf("libraries[%d]", i)
		l.pos = map[string]Pos{}
		for k, v := range d.pos {
			if rest, ok := strings.CutPrefix(k, p); ok && (rest == "" || rest[0] == '.') {
				l.pos[strings.TrimPrefix(rest, ".")] = v
			}
		}
		at := l.At
		switch {
		case !libraryName.MatchString(l.Name):
			ps.add(at("name"), "use lower case letters, digits and . _ -", "library name %q is not allowed", l.Name)
		case seen[l.Name]:
			ps.add(at("name"), "give each library its own name", "library %q is listed twice", l.Name)
		}
		seen[l.Name] = true
		switch {
		case (l.Git == "") == (l.Path == ""):
			ps.add(at(""), "give git: (a repository URL) or path: (a directory), not both", "library %q needs exactly one of git and path", l.Name)
		case l.Git != "":
			if !gitURL(l.Git) {
				ps.add(at("git"), "give a repository URL: https://, http://, ssh://, git:// or file://, or user@host:path", "git %q is not a repository URL", l.Git)
			}
			if l.Ref != "" && !safeRef.MatchString(l.Ref) {
				ps.add(at("ref"), "give a branch, a tag or a full commit: letters, digits and . _ / + -, starting with a letter or digit", "ref %q is not a plain ref name", l.Ref)
			}
		default:
			if l.Ref != "" {
				ps.add(at("ref"), "remove ref: a path library is used as the directory holds it", "ref is only for git libraries")
			}
			if st, err := os.Stat(filepath.Join(l.Where(root), "software")); err != nil || !st.IsDir() {
				ps.add(at("path"), "give a directory that holds software/, relative to "+root, "path library %q has no software/ directory", l.Path)
			}
		}
	}
	return f.Libraries, ps.err()
}
