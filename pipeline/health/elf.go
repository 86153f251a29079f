package health

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coach-build/coach/pipeline/target"
)

// object is what the check needs to know of one ELF file.
type object struct {
	class      elf.Class
	machine    elf.Machine
	typ        elf.Type
	interp     bool   // has PT_INTERP: an executable (or PIE) run directly
	interpPath string // the PT_INTERP path
	dynamic    bool   // has a dynamic section; false for static binaries
	soname     string
	needed     []string
	rpath      []string // DT_RPATH entries, split on ':'
	runpath    []string // DT_RUNPATH entries
	hasRun     bool     // DT_RUNPATH present (even if empty)
	// needs maps a needed library's soname to the symbol versions the
	// object uses from it (SHT_GNU_verneed).
	needs map[string][]string
	// defs are the versions the object defines (SHT_GNU_verdef).
	defs map[string]bool
}

var elfMagic = []byte("\x7fELF")

// isELF reports whether a file starts with the ELF magic.
func isELF(r io.ReaderAt) bool {
	var head [4]byte
	n, _ := r.ReadAt(head[:], 0)
	return n == 4 && bytes.Equal(head[:], elfMagic)
}

// readObject parses an ELF file. Every failure is an error saying what is
// wrong; it never panics on malformed input.
func readObject(path string) (o *object, err error) {
	defer func() {
		// debug/elf is robust, but a malformed file must not take the
		// whole check down with it.
		if r := recover(); r != nil {
			o, err = nil, fmt.Errorf("malformed ELF: %v", r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: %w", err)
	}
	defer ef.Close()
	o = &object{class: ef.Class, machine: ef.Machine, typ: ef.Type}
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			o.interp = true
			if b, err := io.ReadAll(io.LimitReader(p.Open(), 4096)); err == nil {
				o.interpPath = strings.TrimRight(string(b), "\x00")
			}
		case elf.PT_DYNAMIC:
			o.dynamic = true
		}
	}
	if !o.dynamic {
		return o, nil
	}
	// What ld.so reads: the dynamic array of PT_DYNAMIC, whatever the
	// section headers say (they may be missing or lie). DT_FILTER and
	// DT_AUXILIARY name filtees, which ld.so loads as it loads DT_NEEDED.
	dyn, err := readDynamic(ef, f)
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: %w", err)
	}
	o.needed = append(append(append(o.needed, dyn.strs[elf.DT_NEEDED]...), dyn.strs[elf.DT_FILTER]...), dyn.strs[elf.DT_AUXILIARY]...)
	if names := dyn.strs[elf.DT_SONAME]; len(names) > 0 {
		o.soname = names[0]
	}
	if rp := dyn.strs[elf.DT_RPATH]; len(rp) > 0 {
		o.rpath = splitPath(strings.Join(rp, ":"))
	}
	if rp, ok := dyn.strs[elf.DT_RUNPATH]; ok {
		o.hasRun = true
		o.runpath = splitPath(strings.Join(rp, ":"))
	}
	o.needs = map[string][]string{}
	if vn, err := ef.DynamicVersionNeeds(); err == nil {
		for _, n := range vn {
			for _, d := range n.Needs {
				o.needs[n.Name] = append(o.needs[n.Name], d.Dep)
			}
		}
	}
	o.defs = map[string]bool{}
	if vd, err := ef.DynamicVersions(); err == nil {
		for _, d := range vd {
			o.defs[d.Name] = true
		}
	}
	return o, nil
}

func splitPath(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ":") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// compatible reports whether lib can be loaded into a process of o.
func compatible(o, lib *object) bool {
	return o.class == lib.class && o.machine == lib.machine
}

// defaultInterp is the dynamic loader of an architecture, which every
// process has loaded before any library.
func defaultInterp(m elf.Machine) string {
	a, _ := target.ArchOfMachine(m)
	return a.Interp
}

// platform is what $PLATFORM expands to for an ELF machine.
func platform(m elf.Machine) string {
	if a, ok := target.ArchOfMachine(m); ok && a.Platform != "" {
		return a.Platform
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}
