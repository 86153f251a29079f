package pkg

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/coach-build/coach/pipeline/target"
)

// writeRPM writes the rpm that info describes. Like writeDeb it is
// coach's own writer: nfpm hands rpmpack every file's whole body and
// rpmpack keeps them all, and the compressed payload, in memory (about
// four times the package size in RSS). Here the cpio payload streams
// through the compressor into a temporary file in work while each file's
// sha256 is taken; then the header, which holds those digests and the
// payload's, is written, and the payload copied after it. The payload's
// member names are relative ("./opt/..."), as rpmbuild writes them.
// nfpm still prepares the contents and names the file. With a signer,
// the signature header also holds an OpenPGP signature of the header
// (RPMSIGTAG_RSA, what rpm 4.16 and later check) and one of the header
// and payload (RPMSIGTAG_PGP, for older rpms), as rpmsign and rpmpack
// write them; the header and payload are the bytes an unsigned rpm holds.
func writeRPM(info *nfpm.Info, work string, signer *Signer, out io.Writer) error {
	if err := nfpm.PrepareForPackager(info, "rpm"); err != nil {
		return err
	}
	info.Arch = FormatArch(target.FormatRPM, info.Arch)
	info.Release = cmp.Or(info.Release, "1")
	info.Version, info.Prerelease, info.VersionMetadata = rpmVersion(info), "", ""
	payload, err := os.CreateTemp(work, "payload.*")
	if err != nil {
		return err
	}
	defer os.Remove(payload.Name())
	defer payload.Close()
	digest := sha256.New()
	zw, kind, err := newCompressor(info.RPM.Compression, info.MTime, io.MultiWriter(payload, digest))
	if err != nil {
		return err
	}
	if kind == "none" {
		return fmt.Errorf("rpm payloads are compressed; compression %q is for debs only", info.RPM.Compression)
	}
	fl, rawSize, err := writeCPIO(info, zw)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	payloadSize, err := payload.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	header, err := rpmHeader(info, fl, kind, hex.EncodeToString(digest.Sum(nil)))
	if err != nil {
		return err
	}
	if rawSize > math.MaxInt32 || payloadSize+int64(len(header)) > math.MaxInt32 {
		return fmt.Errorf("the payload is %d bytes: rpms over 2 GiB need 64-bit size tags, which coach does not write", rawSize)
	}
	headerSum := sha256.Sum256(header)
	var sig rpmIndex
	sig.int32s(rpmSigSize, int32(int64(len(header))+payloadSize))
	sig.str(rpmSigSHA256, hex.EncodeToString(headerSum[:]))
	sig.int32s(rpmSigPayloadSize, int32(rawSize))
	if signer != nil {
		headerSig, err := signer.Detached(bytes.NewReader(header))
		if err != nil {
			return err
		}
		if _, err := payload.Seek(0, io.SeekStart); err != nil {
			return err
		}
		wholeSig, err := signer.Detached(io.MultiReader(bytes.NewReader(header), payload))
		if err != nil {
			return err
		}
		sig.add(rpmSigRSA, rpmTypeBin, len(headerSig), headerSig)
		sig.add(rpmSigPGP, rpmTypeBin, len(wholeSig), wholeSig)
	}
	sigBytes := sig.bytes(rpmHeaderSignatures)
	if _, err := out.Write(rpmLead(info.Name + "-" + info.Version + "-" + info.Release)); err != nil {
		return err
	}
	if _, err := out.Write(append(sigBytes, make([]byte, (8-len(sigBytes)%8)%8)...)); err != nil {
		return err
	}
	if _, err := out.Write(header); err != nil {
		return err
	}
	if _, err := payload.Seek(0, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(out, payload)
	if err == nil && n != payloadSize {
		err = fmt.Errorf("payload: copied %d bytes of %d", n, payloadSize)
	}
	return err
}

// rpmVersion is the rpm Version of a semver version nfpm has split: a
// pre-release after "~" (so it sorts before the release) with its "-"
// made "_" (rpm versions cannot hold "-"), build metadata after "+".
func rpmVersion(info *nfpm.Info) string {
	v := info.Version
	if info.Prerelease != "" {
		v += "~" + strings.ReplaceAll(info.Prerelease, "-", "_")
	}
	if info.VersionMetadata != "" {
		v += "+" + info.VersionMetadata
	}
	return v
}

// rpmFile is one entry of the header's file list.
type rpmFile struct {
	name, digest, link string
	mode               uint16
	size               uint32
	flags              int32
	owner, group       string
	inode              uint32 // shared by hard links
}

// rpm's file flags.
const (
	rpmFileConfig    = 1 << 0
	rpmFileDoc       = 1 << 1
	rpmFileMissingOK = 1 << 3
	rpmFileNoReplace = 1 << 4
	rpmFileGhost     = 1 << 6
	rpmFileLicense   = 1 << 7
	rpmFileReadme    = 1 << 8
)

// writeCPIO writes the payload, a cpio archive in the "newc" format,
// in the header's file order, and returns the file list and the
// archive's uncompressed size.
func writeCPIO(info *nfpm.Info, w io.Writer) ([]rpmFile, int64, error) {
	var list []rpmFile
	for _, c := range info.Contents {
		if c.Packager != "" && c.Packager != "rpm" || c.Type == files.TypeImplicitDir {
			continue
		}
		name := path.Clean("/" + files.ToNixPath(c.Destination))
		if name == "/" {
			continue
		}
		f := rpmFile{name: name, owner: cmp.Or(c.FileInfo.Owner, "root"), group: cmp.Or(c.FileInfo.Group, "root")}
		perm := uint16(tarMode(c.Mode()))
		switch c.Type {
		case files.TypeDir:
			f.mode, f.size = 0o040000|perm, 4096
		case files.TypeSymlink:
			f.mode, f.link, f.size = 0o120777, c.Source, uint32(len(c.Source))
		case files.TypeFile, files.TypeConfig, files.TypeConfigNoReplace, files.TypeConfigMissingOK,
			files.TypeRPMDoc, files.TypeRPMLicence, files.TypeRPMLicense, files.TypeRPMReadme, files.TypeRPMGhost:
			f.mode = 0o100000 | perm
			f.flags = map[string]int32{
				files.TypeConfig: rpmFileConfig, files.TypeConfigNoReplace: rpmFileConfig | rpmFileNoReplace,
				files.TypeConfigMissingOK: rpmFileConfig | rpmFileMissingOK, files.TypeRPMDoc: rpmFileDoc,
				files.TypeRPMLicence: rpmFileLicense, files.TypeRPMLicense: rpmFileLicense,
				files.TypeRPMReadme: rpmFileReadme, files.TypeRPMGhost: rpmFileGhost,
			}[c.Type]
		default:
			return nil, 0, fmt.Errorf("%s: content type %q cannot be written to an rpm", c.Destination, c.Type)
		}
		list = append(list, f)
	}
	// The header's lists are sorted by name, and the payload follows them.
	sources := map[string]string{}
	for _, c := range info.Contents {
		sources[path.Clean("/"+files.ToNixPath(c.Destination))] = c.Source
	}
	slices.SortFunc(list, func(a, b rpmFile) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(list); i++ {
		if list[i].name == list[i-1].name {
			return nil, 0, fmt.Errorf("%s is in the package twice", list[i].name)
		}
	}
	// Hard links share an inode number; as rpm writes them, the last of a
	// set in the payload carries the content and the others are empty
	// entries with the set's link count.
	links := hardLinks(info.Contents)
	inodes := make([]uint32, len(list))
	sets := map[string][]int{} // the first name of a set -> its members
	index := map[string]int{}
	for i := range list {
		index[list[i].name] = i
		inodes[i] = uint32(i + 1)
	}
	for _, c := range info.Contents {
		first, ok := links[c.Destination]
		if !ok {
			continue
		}
		name, firstName := path.Clean("/"+files.ToNixPath(c.Destination)), path.Clean("/"+files.ToNixPath(first))
		if len(sets[firstName]) == 0 {
			sets[firstName] = []int{index[firstName]}
		}
		sets[firstName] = append(sets[firstName], index[name])
	}
	nlinks := make([]uint32, len(list))
	carrier := make([]int, len(list)) // the member that carries a set's content
	for i := range list {
		carrier[i] = i
	}
	for _, members := range sets {
		slices.Sort(members)
		last := members[len(members)-1]
		for _, m := range members {
			inodes[m], nlinks[m], carrier[m] = inodes[members[0]], uint32(len(members)), last
		}
	}
	cw := &countWriter{}
	mw := io.MultiWriter(w, cw)
	buf := make([]byte, 256<<10)
	mtime := uint32(max(info.MTime.Unix(), 0))
	for i := range list {
		f := &list[i]
		if f.flags&rpmFileGhost != 0 {
			continue // in the header, not in the payload
		}
		nlink := uint32(1)
		switch {
		case f.mode&0o170000 == 0o040000:
			nlink = 2
		case nlinks[i] > 1:
			nlink = nlinks[i]
		}
		if nlinks[i] > 1 && carrier[i] != i {
			// An empty member of a hard link set: its size and digest
			// are the carrier's, filled in below.
			if err := cpioHeader(mw, "."+f.name, inodes[i], uint32(f.mode), nlink, mtime, 0); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err := cpioEntry(mw, cw, f, sources[f.name], inodes[i], nlink, mtime, buf); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	for i := range list {
		if c := carrier[i]; c != i {
			list[i].size, list[i].digest, list[i].inode = list[c].size, list[c].digest, inodes[i]
		} else {
			list[i].inode = inodes[i]
		}
	}
	if err := cpioHeader(mw, "TRAILER!!!", 0, 0, 1, 0, 0); err != nil {
		return nil, 0, err
	}
	return list, cw.n, nil
}

// cpioEntry writes one entry: its header, and a symlink's target or a
// regular file's content, whose size and sha256 it records in f.
func cpioEntry(w io.Writer, cw *countWriter, f *rpmFile, src string, ino, nlink, mtime uint32, buf []byte) error {
	var body io.Reader
	switch f.mode & 0o170000 {
	case 0o040000:
		return cpioHeader(w, "."+f.name, ino, uint32(f.mode), nlink, mtime, 0)
	case 0o120000:
		body = strings.NewReader(f.link)
	default:
		file, err := os.Open(src)
		if err != nil {
			return err
		}
		defer file.Close()
		fi, err := file.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Size() > math.MaxUint32 {
			return fmt.Errorf("%s is not a regular file under 4 GiB", src)
		}
		f.size = uint32(fi.Size())
		body = io.LimitReader(file, fi.Size())
	}
	if err := cpioHeader(w, "."+f.name, ino, uint32(f.mode), nlink, mtime, f.size); err != nil {
		return err
	}
	dst := w
	sum := sha256.New()
	if f.mode&0o170000 == 0o100000 {
		dst = io.MultiWriter(w, sum)
	}
	n, err := io.CopyBuffer(dst, body, buf)
	if err != nil {
		return err
	}
	if n != int64(f.size) {
		return fmt.Errorf("%s shrank while it was packaged", src)
	}
	if f.mode&0o170000 == 0o100000 {
		f.digest = hex.EncodeToString(sum.Sum(nil))
	}
	return cpioPad(w, cw.n)
}

// cpioHeader writes a "newc" header, its name and the padding after it.
func cpioHeader(w io.Writer, name string, ino, mode, nlink, mtime, size uint32) error {
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%s\x00",
		ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(name)+1, 0, name)
	h += strings.Repeat("\x00", (4-len(h)%4)%4)
	_, err := io.WriteString(w, h)
	return err
}

// cpioPad pads the archive, at offset, to a multiple of four bytes.
func cpioPad(w io.Writer, offset int64) error {
	_, err := w.Write(make([]byte, (4-offset%4)%4))
	return err
}

// rpm's header tags, and their value types (lib/rpmtag.h).
const (
	rpmHeaderSignatures = 62
	rpmHeaderImmutable  = 63
	rpmTagI18NTable     = 100

	rpmSigRSA         = 268
	rpmSigSHA256      = 273
	rpmSigPGP         = 1002
	rpmSigSize        = 1000
	rpmSigPayloadSize = 1007

	rpmTagName              = 1000
	rpmTagVersion           = 1001
	rpmTagRelease           = 1002
	rpmTagEpoch             = 1003
	rpmTagSummary           = 1004
	rpmTagDescription       = 1005
	rpmTagBuildTime         = 1006
	rpmTagBuildHost         = 1007
	rpmTagSize              = 1009
	rpmTagVendor            = 1011
	rpmTagLicense           = 1014
	rpmTagPackager          = 1015
	rpmTagGroup             = 1016
	rpmTagURL               = 1020
	rpmTagOS                = 1021
	rpmTagArch              = 1022
	rpmTagPreIn             = 1023
	rpmTagPostIn            = 1024
	rpmTagPreUn             = 1025
	rpmTagPostUn            = 1026
	rpmTagFileSizes         = 1028
	rpmTagFileModes         = 1030
	rpmTagFileRDevs         = 1033
	rpmTagFileMTimes        = 1034
	rpmTagFileDigests       = 1035
	rpmTagFileLinkTos       = 1036
	rpmTagFileFlags         = 1037
	rpmTagFileUserName      = 1039
	rpmTagFileGroupName     = 1040
	rpmTagSourceRPM         = 1044
	rpmTagFileVerifyFlags   = 1045
	rpmTagProvideName       = 1047
	rpmTagRequireFlags      = 1048
	rpmTagRequireName       = 1049
	rpmTagRequireVersion    = 1050
	rpmTagConflictFlags     = 1053
	rpmTagConflictName      = 1054
	rpmTagConflictVersion   = 1055
	rpmTagRPMVersion        = 1064
	rpmTagChangelogTime     = 1080
	rpmTagChangelogName     = 1081
	rpmTagChangelogText     = 1082
	rpmTagPreInProg         = 1085
	rpmTagPostInProg        = 1086
	rpmTagPreUnProg         = 1087
	rpmTagPostUnProg        = 1088
	rpmTagObsoleteName      = 1090
	rpmTagFileDevices       = 1095
	rpmTagFileInodes        = 1096
	rpmTagFileLangs         = 1097
	rpmTagProvideFlags      = 1112
	rpmTagProvideVersion    = 1113
	rpmTagObsoleteFlags     = 1114
	rpmTagObsoleteVersion   = 1115
	rpmTagDirIndexes        = 1116
	rpmTagBaseNames         = 1117
	rpmTagDirNames          = 1118
	rpmTagPayloadFormat     = 1124
	rpmTagPayloadCompressor = 1125
	rpmTagPayloadFlags      = 1126
	rpmTagPreTrans          = 1151
	rpmTagPostTrans         = 1152
	rpmTagPreTransProg      = 1153
	rpmTagPostTransProg     = 1154
	rpmTagFileDigestAlgo    = 5011
	rpmTagEncoding          = 5062
	rpmTagPayloadDigest     = 5092
	rpmTagPayloadDigestAlgo = 5093

	rpmTypeInt16       = 3
	rpmTypeInt32       = 4
	rpmTypeString      = 6
	rpmTypeBin         = 7
	rpmTypeStringArray = 8
	rpmTypeI18NString  = 9

	rpmHashSHA256 = 8

	rpmSenseLess    = 1 << 1
	rpmSenseGreater = 1 << 2
	rpmSenseEqual   = 1 << 3
	rpmSenseRPMLib  = 1 << 24
)

// rpmIndex collects a header's entries; bytes lays them out.
type rpmIndex struct {
	entries []rpmEntry
}

type rpmEntry struct {
	tag, typ, count int
	data            []byte
}

func (x *rpmIndex) add(tag, typ, count int, data []byte) {
	x.entries = append(x.entries, rpmEntry{tag, typ, count, data})
}

func (x *rpmIndex) str(tag int, s string) {
	x.add(tag, rpmTypeString, 1, append([]byte(s), 0))
}

func (x *rpmIndex) i18n(tag int, s string) {
	x.add(tag, rpmTypeI18NString, 1, append([]byte(s), 0))
}

func (x *rpmIndex) strs(tag int, ss []string) {
	var b []byte
	for _, s := range ss {
		b = append(append(b, s...), 0)
	}
	x.add(tag, rpmTypeStringArray, len(ss), b)
}

func (x *rpmIndex) int32s(tag int, v ...int32) {
	b := make([]byte, 4*len(v))
	for i, n := range v {
		binary.BigEndian.PutUint32(b[4*i:], uint32(n))
	}
	x.add(tag, rpmTypeInt32, len(v), b)
}

func (x *rpmIndex) int16s(tag int, v ...uint16) {
	b := make([]byte, 2*len(v))
	for i, n := range v {
		binary.BigEndian.PutUint16(b[2*i:], n)
	}
	x.add(tag, rpmTypeInt16, len(v), b)
}

// bytes is the header: magic, counts, the index (the region tag first,
// then the entries by tag), and the data store, each value aligned to
// its type, ending with the region trailer.
func (x *rpmIndex) bytes(region int) []byte {
	entries := slices.Clone(x.entries)
	slices.SortStableFunc(entries, func(a, b rpmEntry) int { return a.tag - b.tag })
	var data bytes.Buffer
	offsets := make([]int, len(entries))
	for i, e := range entries {
		align := map[int]int{rpmTypeInt16: 2, rpmTypeInt32: 4}[e.typ]
		for align > 0 && data.Len()%align != 0 {
			data.WriteByte(0)
		}
		offsets[i] = data.Len()
		data.Write(e.data)
	}
	trailer := data.Len()
	n := len(entries) + 1
	binary.Write(&data, binary.BigEndian, []int32{int32(region), rpmTypeBin, int32(-16 * n), 16})
	var out bytes.Buffer
	out.Write([]byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0})
	binary.Write(&out, binary.BigEndian, []int32{int32(n), int32(data.Len())})
	binary.Write(&out, binary.BigEndian, []int32{int32(region), rpmTypeBin, int32(trailer), 16})
	for i, e := range entries {
		binary.Write(&out, binary.BigEndian, []int32{int32(e.tag), int32(e.typ), int32(offsets[i]), int32(e.count)})
	}
	out.Write(data.Bytes())
	return out.Bytes()
}

// rpmLead is the 96-byte lead rpm still reads first: magic, version
// 3.0, binary, the name.
func rpmLead(name string) []byte {
	b := make([]byte, 96)
	copy(b, []byte{0xed, 0xab, 0xee, 0xdb, 3, 0, 0, 0, 0, 1})
	copy(b[10:75], name)
	binary.BigEndian.PutUint16(b[76:], 1) // os: linux
	binary.BigEndian.PutUint16(b[78:], 5) // signature type: header-style
	return b
}

// relationPattern splits "name", "name >= 1.0" and "name(x) = 1"; a
// rich dependency in parentheses is one name.
var relationPattern = regexp.MustCompile(`^\s*(\S+?)\s*(?:(<=|>=|<|>|=)\s*(\S+))?\s*$`)

// rpmRelations turns dependency strings into names, flags and versions.
func rpmRelations(items []string) (names, versions []string, flags []int32, err error) {
	for _, it := range items {
		if strings.HasPrefix(strings.TrimSpace(it), "(") {
			names, versions, flags = append(names, strings.TrimSpace(it)), append(versions, ""), append(flags, 0)
			continue
		}
		m := relationPattern.FindStringSubmatch(it)
		if m == nil {
			return nil, nil, nil, fmt.Errorf("dependency %q is not name [op version]", it)
		}
		f := map[string]int32{"": 0, "<": rpmSenseLess, ">": rpmSenseGreater, "=": rpmSenseEqual,
			"<=": rpmSenseLess | rpmSenseEqual, ">=": rpmSenseGreater | rpmSenseEqual}[m[2]]
		names, versions, flags = append(names, m[1]), append(versions, m[3]), append(flags, f)
	}
	return names, versions, flags, nil
}

// rpmHeader is the main header: the package's metadata, relations,
// scripts, changelog, file list and payload description.
func rpmHeader(info *nfpm.Info, list []rpmFile, compressor, payloadDigest string) ([]byte, error) {
	var h rpmIndex
	full := info.Version + "-" + info.Release
	h.strs(rpmTagI18NTable, []string{"C"})
	h.str(rpmTagName, info.Name)
	h.str(rpmTagVersion, info.Version)
	h.str(rpmTagRelease, info.Release)
	if info.Epoch != "" {
		var e int32
		if _, err := fmt.Sscan(info.Epoch, &e); err != nil {
			return nil, fmt.Errorf("epoch %q: %w", info.Epoch, err)
		}
		h.int32s(rpmTagEpoch, e)
		full = info.Epoch + ":" + full
	}
	summary, _, _ := strings.Cut(info.Description, "\n")
	h.i18n(rpmTagSummary, cmp.Or(info.RPM.Summary, summary))
	h.i18n(rpmTagDescription, info.Description)
	h.int32s(rpmTagBuildTime, int32(max(info.MTime.Unix(), 0)))
	h.str(rpmTagBuildHost, cmp.Or(info.RPM.BuildHost, "coach"))
	var size int64
	counted := map[uint32]bool{} // a hard link set's size counts once
	for _, f := range list {
		if f.mode&0o170000 == 0o100000 && (f.inode == 0 || !counted[f.inode]) {
			size += int64(f.size)
			counted[f.inode] = true
		}
	}
	h.int32s(rpmTagSize, int32(min(size, math.MaxInt32)))
	if info.Vendor != "" {
		h.str(rpmTagVendor, info.Vendor)
	}
	h.str(rpmTagLicense, info.License)
	h.str(rpmTagPackager, cmp.Or(info.RPM.Packager, info.Maintainer))
	h.i18n(rpmTagGroup, cmp.Or(info.RPM.Group, "Unspecified"))
	if info.Homepage != "" {
		h.str(rpmTagURL, info.Homepage)
	}
	h.str(rpmTagOS, "linux")
	h.str(rpmTagArch, info.Arch)
	for _, s := range []struct {
		file      string
		tag, prog int
	}{
		{info.RPM.Scripts.PreTrans, rpmTagPreTrans, rpmTagPreTransProg},
		{info.Scripts.PreInstall, rpmTagPreIn, rpmTagPreInProg},
		{info.Scripts.PostInstall, rpmTagPostIn, rpmTagPostInProg},
		{info.Scripts.PreRemove, rpmTagPreUn, rpmTagPreUnProg},
		{info.Scripts.PostRemove, rpmTagPostUn, rpmTagPostUnProg},
		{info.RPM.Scripts.PostTrans, rpmTagPostTrans, rpmTagPostTransProg},
	} {
		if s.file == "" {
			continue
		}
		body, err := os.ReadFile(s.file)
		if err != nil {
			return nil, err
		}
		h.str(s.tag, string(body))
		h.str(s.prog, "/bin/sh")
	}
	if len(list) > 0 {
		var dirs, bases, digests, links, users, groups, langs []string
		var dirIndex []int32
		var sizes, mtimes, flags, inodes, devices, verify []int32
		var modes, rdevs []uint16
		seen := map[string]int32{}
		for i, f := range list {
			dir, base := path.Split(f.name)
			idx, ok := seen[dir]
			if !ok {
				idx = int32(len(dirs))
				seen[dir] = idx
				dirs = append(dirs, dir)
			}
			dirIndex, bases = append(dirIndex, idx), append(bases, base)
			digests, links = append(digests, f.digest), append(links, f.link)
			users, groups, langs = append(users, f.owner), append(groups, f.group), append(langs, "")
			sizes, mtimes = append(sizes, int32(f.size)), append(mtimes, int32(max(info.MTime.Unix(), 0)))
			flags, inodes, devices, verify = append(flags, f.flags), append(inodes, int32(cmp.Or(f.inode, uint32(i+1)))), append(devices, 1), append(verify, -1)
			modes, rdevs = append(modes, f.mode), append(rdevs, 0)
		}
		h.int32s(rpmTagFileSizes, sizes...)
		h.int16s(rpmTagFileModes, modes...)
		h.int16s(rpmTagFileRDevs, rdevs...)
		h.int32s(rpmTagFileMTimes, mtimes...)
		h.strs(rpmTagFileDigests, digests)
		h.strs(rpmTagFileLinkTos, links)
		h.int32s(rpmTagFileFlags, flags...)
		h.strs(rpmTagFileUserName, users)
		h.strs(rpmTagFileGroupName, groups)
		h.int32s(rpmTagFileVerifyFlags, verify...)
		h.int32s(rpmTagFileDevices, devices...)
		h.int32s(rpmTagFileInodes, inodes...)
		h.strs(rpmTagFileLangs, langs)
		h.int32s(rpmTagDirIndexes, dirIndex...)
		h.strs(rpmTagBaseNames, bases)
		h.strs(rpmTagDirNames, dirs)
		h.int32s(rpmTagFileDigestAlgo, rpmHashSHA256)
	}
	h.str(rpmTagSourceRPM, info.Name+"-"+info.Version+"-"+info.Release+".src.rpm")

	provides := append(slices.Clone(info.Provides), info.Name+" = "+full)
	requires := slices.Clone(info.Depends)
	lib := []string{"rpmlib(CompressedFileNames) <= 3.0.4-1", "rpmlib(FileDigests) <= 4.6.0-1", "rpmlib(PayloadFilesHavePrefix) <= 4.0-1"}
	switch compressor {
	case "zstd":
		lib = append(lib, "rpmlib(PayloadIsZstd) <= 5.4.18-1")
	case "xz":
		lib = append(lib, "rpmlib(PayloadIsXz) <= 5.2-1")
	}
	for _, r := range []struct {
		items                []string
		name, flags, version int
		rpmlib               []string
	}{
		{provides, rpmTagProvideName, rpmTagProvideFlags, rpmTagProvideVersion, nil},
		{requires, rpmTagRequireName, rpmTagRequireFlags, rpmTagRequireVersion, lib},
		{info.Conflicts, rpmTagConflictName, rpmTagConflictFlags, rpmTagConflictVersion, nil},
		{info.Replaces, rpmTagObsoleteName, rpmTagObsoleteFlags, rpmTagObsoleteVersion, nil},
	} {
		names, versions, fl, err := rpmRelations(r.items)
		if err != nil {
			return nil, err
		}
		libNames, libVersions, libFlags, _ := rpmRelations(r.rpmlib)
		for i := range libFlags {
			libFlags[i] |= rpmSenseRPMLib
		}
		names, versions, fl = append(names, libNames...), append(versions, libVersions...), append(fl, libFlags...)
		if len(names) == 0 {
			continue
		}
		h.strs(r.name, names)
		h.int32s(r.flags, fl...)
		h.strs(r.version, versions)
	}
	if len(info.Recommends)+len(info.Suggests) > 0 {
		return nil, fmt.Errorf("rpm recommends and suggests are not written by coach's rpm writer")
	}
	if info.Changelog != "" {
		log, err := info.GetChangeLog()
		if err != nil {
			return nil, fmt.Errorf("changelog: %w", err)
		}
		var times []int32
		var names, texts []string
		for _, e := range log.Entries {
			times = append(times, int32(e.Date.Unix()))
			names = append(names, e.Packager+" - "+e.Semver)
			var notes []string
			for _, c := range e.Changes {
				notes = append(notes, "- "+strings.TrimSpace(c.Note))
			}
			texts = append(texts, strings.Join(notes, "\n"))
		}
		if len(times) > 0 {
			h.int32s(rpmTagChangelogTime, times...)
			h.strs(rpmTagChangelogName, names)
			h.strs(rpmTagChangelogText, texts)
		}
	}
	h.str(rpmTagRPMVersion, "coach")
	h.str(rpmTagPayloadFormat, "cpio")
	h.str(rpmTagPayloadCompressor, compressor)
	h.str(rpmTagPayloadFlags, payloadLevel(info.RPM.Compression))
	h.strs(rpmTagPayloadDigest, []string{payloadDigest})
	h.int32s(rpmTagPayloadDigestAlgo, rpmHashSHA256)
	h.str(rpmTagEncoding, "utf-8")
	return h.bytes(rpmHeaderImmutable), nil
}

// payloadLevel is the level rpm records for the payload's compression.
func payloadLevel(setting string) string {
	if _, level, ok := strings.Cut(setting, ":"); ok {
		return level
	}
	return map[string]string{"gzip": "9", "zstd": "3", "xz": "6"}[setting]
}

// Versions are the upstream parts of the deb and rpm versions a project
// version becomes (before the -iteration), as the writers write them.
func Versions(semver string) (deb, rpm string) {
	info := nfpm.WithDefaults(&nfpm.Info{Name: "x", Arch: "amd64", Version: semver})
	return debUpstream(info), rpmVersion(info)
}
