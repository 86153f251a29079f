package health

import (
	"debug/elf"
	"errors"
	"path"
	"strings"
	"sync"
)

// loader resolves DT_NEEDED entries the way glibc's ld.so does, over a view.
type loader struct {
	v *view
	// sysDirs are searched after RPATH/RUNPATH: the target's ld.so.conf
	// directories (what ld.so.cache indexes), then its default directories.
	sysDirs []string
	// libDir is what $LIB expands to.
	libDir string

	mu    sync.Mutex
	objs  map[string]objResult // host path -> parsed object
	found map[string]found     // search key -> result
}

type objResult struct {
	o   *object
	err error
}

// found is where a name resolved: the runtime path as ld.so reports it
// (search directory + name) and the object there.
type found struct {
	path string
	// real is where path leads once every symlink is followed: a link in
	// the tree to a system library is a system library.
	real string
	obj  *object
	how  string // rpath, runpath, system, path
	// incompatible names a candidate skipped for its class or machine,
	// for the message when nothing else is found; excluded one left out
	// of the package.
	incompatible string
	excluded     string
}

func newLoader(v *view, defaults []string, libDir string) *loader {
	l := &loader{v: v, libDir: libDir, objs: map[string]objResult{}, found: map[string]found{}}
	seen := map[string]bool{}
	if v.sysroot != "" {
		for _, d := range append(v.ldSoConf(), defaults...) {
			if !seen[d] {
				seen[d] = true
				l.sysDirs = append(l.sysDirs, d)
			}
		}
	}
	return l
}

// object parses (once) the file at a host path.
func (l *loader) object(host string) (*object, error) {
	l.mu.Lock()
	r, ok := l.objs[host]
	l.mu.Unlock()
	if ok {
		return r.o, r.err
	}
	o, err := readObject(host)
	l.mu.Lock()
	l.objs[host] = objResult{o, err}
	l.mu.Unlock()
	return o, err
}

// node is an object in a simulated process, with the chain of objects
// that caused it to load (for DT_RPATH inheritance).
type node struct {
	path   string // runtime path as loaded
	real   string // runtime realpath, for $ORIGIN
	obj    *object
	parent *node
}

// edge is one resolved (or unresolved) DT_NEEDED entry.
type edge struct {
	from   *node
	soname string
	to     found
}

// closure loads root as ld.so would (breadth first, each soname once) and
// returns every DT_NEEDED edge of every object loaded, and the loaded
// objects by soname.
func (l *loader) closure(rootPath, rootReal string, root *object) ([]edge, map[string]*node) {
	start := &node{path: rootPath, real: rootReal, obj: root}
	loaded := map[string]*node{}
	if root.soname != "" {
		loaded[root.soname] = start
	}
	byPath := map[string]*node{rootReal: start}
	// The dynamic loader is in every process before anything else, under
	// its own name: a DT_NEEDED of ld-linux-x86-64.so.2 finds it there.
	interp := root.interpPath
	if interp == "" {
		interp = defaultInterp(root.machine)
	}
	if interp != "" {
		if _, host, err := l.v.realpath(interp); err == nil {
			if o, err := l.object(host); err == nil && compatible(root, o) {
				rtld := &node{path: interp, real: interp, obj: o}
				loaded[path.Base(interp)] = rtld
				if o.soname != "" {
					loaded[o.soname] = rtld
				}
			}
		} else if l.v.sysroot == "" {
			loaded[path.Base(interp)] = &node{path: interp, real: interp, obj: &object{class: root.class, machine: root.machine, typ: elf.ET_DYN, defs: map[string]bool{}}}
		}
	}
	var edges []edge
	queue := []*node{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, name := range n.obj.needed {
			if m, ok := loaded[name]; ok {
				edges = append(edges, edge{n, name, found{path: m.path, real: m.real, obj: m.obj, how: "loaded"}})
				continue
			}
			f := l.resolve(n, name)
			edges = append(edges, edge{n, name, f})
			if f.obj == nil {
				continue
			}
			real := f.real
			if m, ok := byPath[real]; ok {
				loaded[name] = m
				continue
			}
			m := &node{path: f.path, real: real, obj: f.obj, parent: n}
			loaded[name] = m
			byPath[real] = m
			if f.obj.soname != "" && f.obj.soname != name {
				if _, ok := loaded[f.obj.soname]; !ok {
					loaded[f.obj.soname] = m
				}
			}
			queue = append(queue, m)
		}
	}
	return edges, loaded
}

// expand replaces $ORIGIN, $LIB and $PLATFORM (and their ${} forms).
func (l *loader) expand(s string, n *node) string {
	if !strings.Contains(s, "$") {
		return s
	}
	r := strings.NewReplacer(
		"${ORIGIN}", path.Dir(n.real), "$ORIGIN", path.Dir(n.real),
		"${LIB}", l.libDir, "$LIB", l.libDir,
		"${PLATFORM}", platform(n.obj.machine), "$PLATFORM", platform(n.obj.machine),
	)
	return r.Replace(s)
}

// resolve finds a needed name for object n: a name with a slash is a path
// (after expansion); otherwise DT_RPATH of n and of each object that loaded
// it, but only while n has no DT_RUNPATH and skipping any loader that has
// one; then n's DT_RUNPATH; then the system directories.
func (l *loader) resolve(n *node, name string) found {
	if strings.Contains(name, "/") {
		p := l.expand(name, n)
		if !path.IsAbs(p) {
			return found{how: "path"} // relative to the process's cwd: unknowable
		}
		f := l.try([]string{path.Dir(p)}, path.Base(p), n.obj)
		f.how = "path"
		return f
	}
	type group struct {
		how  string
		dirs []string
	}
	var groups []group
	if !n.obj.hasRun {
		for m := n; m != nil; m = m.parent {
			if m.obj.hasRun {
				continue
			}
			var dirs []string
			for _, d := range m.obj.rpath {
				dirs = append(dirs, l.expand(d, m))
			}
			groups = append(groups, group{"rpath", dirs})
		}
	}
	var run []string
	for _, d := range n.obj.runpath {
		run = append(run, l.expand(d, n))
	}
	groups = append(groups, group{"runpath", run}, group{"system", l.sysDirs})
	var skipped, excluded string
	for _, g := range groups {
		f := l.try(g.dirs, name, n.obj)
		if f.obj != nil {
			f.how = g.how
			return f
		}
		if skipped == "" {
			skipped = f.incompatible
		}
		if excluded == "" {
			excluded = f.excluded
		}
	}
	return found{incompatible: skipped, excluded: excluded}
}

// try looks for name in dirs, in order, skipping files of another class or
// machine as ld.so does. Results are cached per directory list.
func (l *loader) try(dirs []string, name string, for_ *object) found {
	key := strings.Join(dirs, ":") + "\x00" + name + "\x00" + for_.class.String() + for_.machine.String()
	l.mu.Lock()
	f, ok := l.found[key]
	l.mu.Unlock()
	if ok {
		return f
	}
	for _, d := range dirs {
		if !path.IsAbs(d) {
			continue
		}
		p := path.Join(d, name)
		real, host, err := l.v.realpath(p)
		if err != nil {
			if errors.Is(err, errExcluded) && f.excluded == "" {
				f.excluded = p
			}
			continue
		}
		o, err := l.object(host)
		if err != nil || o.typ != elf.ET_DYN {
			continue
		}
		if !compatible(for_, o) {
			if f.incompatible == "" {
				f.incompatible = p + " (" + o.class.String() + " " + o.machine.String() + ")"
			}
			continue
		}
		f = found{path: p, real: real, obj: o}
		break
	}
	l.mu.Lock()
	l.found[key] = f
	l.mu.Unlock()
	return f
}
