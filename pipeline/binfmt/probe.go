package binfmt

import (
	"encoding/binary"
	"fmt"

	"github.com/coach-build/coach/pipeline/target"
)

// Probe is the smallest static program of an architecture: it exits 0.
// Running it is the test of whether a machine (or a container engine)
// runs that architecture's programs, natively or under emulation, without
// needing an image of that architecture.
func Probe(goarch string) ([]byte, error) {
	var code []byte
	switch goarch {
	case "arm64":
		code = le32(
			0xd2800000, // mov x0, #0
			0xd2800ba8, // mov x8, #93 (exit)
			0xd4000001, // svc #0
		)
	case "amd64":
		code = []byte{
			0xb8, 0x3c, 0, 0, 0, // mov eax, 60 (exit)
			0x31, 0xff, // xor edi, edi
			0x0f, 0x05, // syscall
		}
	default:
		return nil, fmt.Errorf("no probe program for %s", goarch)
	}
	machine := uint16(target.LookupArch(goarch).Machine)
	const ehsize, phsize, base = 64, 56, 0x400000
	size := uint64(ehsize + phsize + len(code))
	b := make([]byte, 0, size)
	b = append(b, 0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little-endian */, 1 /* version */, 0 /* System V */)
	b = append(b, make([]byte, 8)...)
	le := binary.LittleEndian
	b = le.AppendUint16(b, 2) // ET_EXEC
	b = le.AppendUint16(b, machine)
	b = le.AppendUint32(b, 1)                  // EV_CURRENT
	b = le.AppendUint64(b, base+ehsize+phsize) // entry: the code
	b = le.AppendUint64(b, ehsize)             // program headers
	b = le.AppendUint64(b, 0)                  // no section headers
	b = le.AppendUint32(b, 0)                  // flags
	b = le.AppendUint16(b, ehsize)             // header size
	b = le.AppendUint16(b, phsize)             // program header size
	b = le.AppendUint16(b, 1)                  // one program header
	b = le.AppendUint16(b, 64)                 // section header size
	b = le.AppendUint16(b, 0)                  // no sections
	b = le.AppendUint16(b, 0)                  // no section names
	b = le.AppendUint32(b, 1)                  // PT_LOAD
	b = le.AppendUint32(b, 5)                  // PF_R | PF_X
	b = le.AppendUint64(b, 0)                  // from the file's start
	b = le.AppendUint64(b, base)               // virtual address
	b = le.AppendUint64(b, base)               // physical address
	b = le.AppendUint64(b, size)               // file size
	b = le.AppendUint64(b, size)               // memory size
	b = le.AppendUint64(b, 0x1000)             // alignment
	return append(b, code...), nil
}

func le32(words ...uint32) []byte {
	var b []byte
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}
