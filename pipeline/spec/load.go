package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Repo is every definition under one root: the projects, the software and the
// hooks, loaded and checked together.
type Repo struct {
	Root     string
	Projects map[string]*Project
	Software map[string]*Software
	// Libraries are the software libraries loaded after the repository's
	// own software, in order; Overrides lists each library definition
	// that one loaded before it (the repository's own, or an earlier
	// library's) replaced.
	Libraries []LibraryRoot
	Overrides []Override
}

// Override is a library's definition that is not used: the repository
// (By "") or an earlier library (By its name) defines the same software.
type Override struct {
	Software string `json:"software"`
	Library  string `json:"library"`
	By       string `json:"by,omitempty"`
	// Path is the definition that is used.
	Path string `json:"path"`
}

func (o Override) String() string {
	by := "the repository's " + o.Path
	if o.By != "" {
		by = "library " + o.By + "'s"
	}
	return fmt.Sprintf("%s: %s overrides library %s's definition", o.Software, by, o.Library)
}

// ProjectNames lists the projects in sorted order.
func (r *Repo) ProjectNames() []string { return slices.Sorted(maps.Keys(r.Projects)) }

// SoftwareNames lists the software in sorted order.
func (r *Repo) SoftwareNames() []string { return slices.Sorted(maps.Keys(r.Software)) }

// Project returns the named project or an error that lists the known ones.
func (r *Repo) Project(name string) (*Project, error) {
	p, ok := r.Projects[name]
	if !ok {
		known := r.ProjectNames()
		if len(known) == 0 {
			return nil, fmt.Errorf("no project %q: there is no projects/*.yaml under %s (run coach new project %s)", name, r.Root, name)
		}
		return nil, fmt.Errorf("no project %q: known projects are %s", name, strings.Join(known, ", "))
	}
	return p, nil
}

// Load reads every definition under root and checks it. On error, the Repo
// is still returned with whatever could be decoded, and the error joins every
// *Problem found (see Problems).
func Load(root string) (*Repo, error) { return LoadWith(root, nil) }

// LoadWith is Load with software libraries: each library's software/
// definitions are used where neither the repository nor an earlier library
// defines the same software, and are checked as the repository's own are.
func LoadWith(root string, libs []LibraryRoot) (*Repo, error) {
	r := &Repo{Root: root, Projects: map[string]*Project{}, Software: map[string]*Software{}, Libraries: libs}
	var ps problems
	softwareFiles, err := definitionFiles(root, "software", &ps)
	if err != nil {
		return nil, err
	}
	projectFiles, err := definitionFiles(root, "projects", &ps)
	if err != nil {
		return nil, err
	}
	if len(softwareFiles) == 0 && len(projectFiles) == 0 && len(libs) == 0 {
		if st, err := os.Stat(root); err != nil {
			return nil, fmt.Errorf("no definitions: %w", err)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("no definitions: %s is not a directory", root)
		}
		ps.add(Pos{File: root}, "run coach in a repository with projects/*.yaml and software/*.yaml, or point -C at one; coach new project <name> starts one", "no definitions found: %s has no projects/*.yaml and no software/*.yaml", root)
		return r, ps.err()
	}
	software, err := decodeAll(root, "", softwareFiles, &ps, decodeSoftware)
	if err != nil {
		return nil, err
	}
	for i, s := range software {
		if s != nil {
			s.Path = softwareFiles[i]
			r.Software[strings.TrimSuffix(filepath.Base(s.Path), ".yaml")] = s
		}
	}
	for _, lib := range libs {
		files, err := definitionFiles(lib.Dir, "software", &ps)
		if err != nil {
			return nil, fmt.Errorf("library %s: %w", lib.Label, err)
		}
		// Named by their full path in messages: a library's
		// software/zlib.yaml is not the repository's.
		defs, err := decodeAll(lib.Dir, lib.Dir+string(filepath.Separator), files, &ps, decodeSoftware)
		if err != nil {
			return nil, fmt.Errorf("library %s: %w", lib.Label, err)
		}
		for i, s := range defs {
			if s == nil {
				continue
			}
			name := strings.TrimSuffix(filepath.Base(files[i]), ".yaml")
			if have, ok := r.Software[name]; ok {
				r.Overrides = append(r.Overrides, Override{Software: name, Library: lib.Name, By: have.Library, Path: have.Path})
				continue
			}
			s.Path = filepath.Join(lib.Dir, files[i])
			s.Dir = filepath.Join(lib.Dir, "software")
			s.Library = lib.Name
			r.Software[name] = s
		}
	}
	projects, err := decodeAll(root, "", projectFiles, &ps, decodeProject)
	if err != nil {
		return nil, err
	}
	for i, p := range projects {
		if p != nil {
			p.Path = projectFiles[i]
			r.Projects[strings.TrimSuffix(filepath.Base(p.Path), ".yaml")] = p
		}
	}
	if err := r.loadHooks(&ps); err != nil {
		return nil, err
	}
	v := validator{repo: r, ps: &ps}
	for _, name := range r.SoftwareNames() {
		v.software(name, r.Software[name])
	}
	v.cycles()
	for _, name := range r.ProjectNames() {
		v.project(name, r.Projects[name])
	}
	if err := ps.err(); err != nil {
		return r, err
	}
	for _, p := range r.Projects {
		p.applyDefaults()
	}
	return r, nil
}

// MaxDefinitionSize is the largest definition file read: the largest real
// one is a few KiB.
const MaxDefinitionSize = 1 << 20

// decodeAll reads and decodes files in parallel; files are independent, and
// a repository of hundreds of definitions loads several times faster.
// Results keep the order of files, and problems are merged per file, each
// named prefix + its path. Files are read through a root confined to
// root: a definition that is a link out of it (a library's, say) is not
// read.
func decodeAll[T any](root, prefix string, files []string, ps *problems, decode func(string, []byte, *problems) *T) ([]*T, error) {
	out := make([]*T, len(files))
	if len(files) == 0 {
		return out, nil
	}
	dir, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	perFile := make([]problems, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), max(len(files), 1)) {
		wg.Go(func() {
			for i := range next {
				if st, err := dir.Stat(files[i]); err == nil && st.Size() > MaxDefinitionSize {
					perFile[i].add(Pos{File: prefix + files[i]}, "split it, or keep data (sources, patches) in files of their own", "the file is %d bytes; a definition may be at most %d", st.Size(), MaxDefinitionSize)
					continue
				}
				data, err := dir.ReadFile(files[i])
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = decode(prefix+files[i], data, &perFile[i])
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	for i := range files {
		*ps = append(*ps, perFile[i]...)
	}
	return out, errors.Join(errs...)
}

// definitionFiles lists dir/*.yaml relative to root, sorted. Files that look
// like definitions but will never be read are problems, not silence.
func definitionFiles(root, dir string, ps *problems) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir(), strings.HasPrefix(name, "."):
		case strings.HasSuffix(name, ".yaml"):
			out = append(out, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".yml"):
			ps.add(Pos{File: filepath.Join(dir, name)}, "rename it to "+strings.TrimSuffix(name, ".yml")+".yaml", "definition files must end in .yaml; this one is ignored")
		}
	}
	return out, nil
}

// parse reads a single YAML document and reports syntax errors with their
// position. An empty file yields nil without a problem; callers decide.
func parse(file string, data []byte, ps *problems) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			ps.add(Pos{File: file, Line: 1, Col: 1}, "a definition needs at least a name", "the file is empty")
			return nil
		}
		ps.add(syntaxPos(file, err), "fix the YAML syntax; a tab in indentation or an unclosed quote is the usual cause", "YAML syntax error: %s", yamlMessage(err))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.add(Pos{File: file, Line: extra.Line, Col: extra.Column}, "keep one definition per file and remove the --- separator", "the file holds more than one YAML document")
	}
	return &doc
}

func decodeProject(file string, data []byte, ps *problems) *Project {
	doc := parse(file, data, ps)
	if doc == nil {
		return nil
	}
	p := &Project{}
	d := decoder{file: file, root: "the project", problems: ps, pos: map[string]Pos{}}
	d.decode(doc, reflectOf(p), "")
	p.pos = d.pos
	return p
}

func decodeSoftware(file string, data []byte, ps *problems) *Software {
	doc := parse(file, data, ps)
	if doc == nil {
		return nil
	}
	s := &Software{}
	d := decoder{file: file, root: "the software definition", problems: ps, pos: map[string]Pos{}}
	d.decode(doc, reflectOf(s), "")
	s.pos = d.pos
	return s
}

// ParseProject decodes one project file without looking at the rest of the
// repository (used by the fuzzer and by editors' quick checks).
func ParseProject(file string, data []byte) (*Project, error) {
	var ps problems
	p := decodeProject(file, data, &ps)
	return p, ps.err()
}

// ParseSoftware decodes one software file on its own.
func ParseSoftware(file string, data []byte) (*Software, error) {
	var ps problems
	s := decodeSoftware(file, data, &ps)
	return s, ps.err()
}

func reflectOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

// syntaxPos pulls "line N" out of a yaml.v3 syntax error.
func syntaxPos(file string, err error) Pos {
	var line int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i:], "line %d", &line)
	}
	col := 1
	if line == 0 {
		line = 1
	}
	return Pos{File: file, Line: line, Col: col}
}

func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+2:]
	}
	return msg
}

// position returns where path was in the file, falling back to its parents
// and finally to the file itself.
func position(file string, pos map[string]Pos, path string) Pos {
	for {
		if p, ok := pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			if p, ok := pos[""]; ok && path != "" {
				return p
			}
			return Pos{File: file}
		}
		path = path[:i]
	}
}

// keyPosition is where the key of path was written (for "unknown x" on a map
// key), falling back to the value.
func keyPosition(file string, pos map[string]Pos, path string) Pos {
	if p, ok := pos[path+"#key"]; ok {
		return p
	}
	return position(file, pos, path)
}

// broken reports whether path could not be decoded at all; validation
// skips it rather than report what follows from the first problem.
func (p *Project) broken(path string) bool { return failed(p.pos, path) }

func (s *Software) broken(path string) bool { return failed(s.pos, path) }

// At returns the position of a field of the project, e.g. "targets[1]".
func (p *Project) At(path string) Pos { return position(p.Path, p.pos, path) }

// At returns the position of a field of the software, e.g. "versions[0].url".
func (s *Software) At(path string) Pos { return position(s.Path, s.pos, path) }

// Embedded is the prefix components install into: <install_dir>/embedded.
func (p *Project) Embedded() string { return p.InstallDir + "/embedded" }

func (p *Project) applyDefaults() {
	if p.Iteration == 0 {
		p.Iteration = 1
	}
	if p.InstallDir == "" {
		p.InstallDir = "/opt/" + p.Name
	}
	if p.Package.Section == "" {
		p.Package.Section = "misc"
	}
}
