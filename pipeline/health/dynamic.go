package health

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
)

// dynamic is an object's dynamic array as ld.so reads it: from the
// PT_DYNAMIC segment, with its strings from DT_STRTAB mapped through the
// PT_LOAD segments. Section headers play no part, so a file whose section
// table is missing, or lies about .dynamic, is read as it will be loaded.
type dynamic struct {
	strs map[elf.DynTag][]string
}

// maxDynamic and maxString bound what a hostile file can make the check
// read.
const (
	maxDynamic = 1 << 20
	maxString  = 1 << 16
)

func readDynamic(ef *elf.File, r io.ReaderAt) (*dynamic, error) {
	var seg *elf.Prog
	for _, p := range ef.Progs {
		if p.Type == elf.PT_DYNAMIC {
			seg = p
			break
		}
	}
	if seg == nil {
		return nil, errors.New("no PT_DYNAMIC segment")
	}
	if seg.Filesz > maxDynamic {
		return nil, fmt.Errorf("PT_DYNAMIC of %d bytes", seg.Filesz)
	}
	data := make([]byte, seg.Filesz)
	if _, err := r.ReadAt(data, int64(seg.Off)); err != nil {
		return nil, fmt.Errorf("read PT_DYNAMIC: %w", err)
	}
	size, word := 16, 8
	if ef.Class == elf.ELFCLASS32 {
		size, word = 8, 4
	}
	get := func(b []byte) uint64 {
		if word == 4 {
			return uint64(ef.ByteOrder.Uint32(b))
		}
		return ef.ByteOrder.Uint64(b)
	}
	type entry struct {
		tag elf.DynTag
		val uint64
	}
	var entries []entry
	var strtab, strsz uint64
	for off := 0; off+size <= len(data); off += size {
		tag, val := elf.DynTag(int64(get(data[off:]))), get(data[off+word:])
		if word == 4 {
			tag = elf.DynTag(int32(uint32(get(data[off:]))))
		}
		if tag == elf.DT_NULL {
			break
		}
		switch tag {
		case elf.DT_STRTAB:
			strtab = val
		case elf.DT_STRSZ:
			strsz = val
		case elf.DT_NEEDED, elf.DT_SONAME, elf.DT_RPATH, elf.DT_RUNPATH, elf.DT_FILTER, elf.DT_AUXILIARY:
			entries = append(entries, entry{tag, val})
		}
	}
	d := &dynamic{strs: map[elf.DynTag][]string{}}
	if len(entries) == 0 {
		return d, nil
	}
	if strsz == 0 {
		return nil, errors.New("DT_STRSZ is 0")
	}
	off, ok := fileOffset(ef, strtab, strsz)
	if !ok {
		return nil, fmt.Errorf("DT_STRTAB %#x (%d bytes) is in no loaded segment", strtab, strsz)
	}
	for _, e := range entries {
		if e.val >= strsz {
			return nil, fmt.Errorf("%v string at %d is outside DT_STRTAB", e.tag, e.val)
		}
		// Only the strings named: a library's table can be megabytes.
		buf := make([]byte, min(maxString, strsz-e.val))
		n, err := r.ReadAt(buf, int64(off+e.val))
		if n == 0 && err != nil {
			return nil, fmt.Errorf("read a %v string: %w", e.tag, err)
		}
		s := buf[:n]
		i := bytes.IndexByte(s, 0)
		if i < 0 {
			return nil, fmt.Errorf("%v string at %d is not terminated within %d bytes", e.tag, e.val, maxString)
		}
		d.strs[e.tag] = append(d.strs[e.tag], string(s[:i]))
	}
	return d, nil
}

// fileOffset maps a virtual address range to its file offset through the
// PT_LOAD segment that holds it.
func fileOffset(ef *elf.File, addr, n uint64) (uint64, bool) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr+n <= p.Vaddr+p.Filesz && addr+n >= addr {
			return addr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}
