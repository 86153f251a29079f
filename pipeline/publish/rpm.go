package publish

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	rpmutils "github.com/sassoftware/go-rpmutils"

	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/target"
)

// RPM is the dnf/yum side of a repository: for each target and
// architecture, rpm/<target>/<arch>/ holds Packages/ and repodata/
// (repomd.xml, its armored signature repomd.xml.asc, and primary,
// filelists and other metadata named by their checksums).
type RPM struct {
	// Dir is the repository's root (shared with the apt side).
	Dir string
	// Signer signs repomd.xml.
	Signer *pkg.Signer
	// Keep is how many versions of each package the metadata keeps (0:
	// every version).
	Keep int
	// Now dates the metadata (time.Now when nil).
	Now func() time.Time
}

// RPMResult says what a publication did.
type RPMResult struct {
	Added, Present, Removed []string
	// Repos are the target/arch repositories whose metadata changed.
	Repos []string
}

// rpmInfo is what the metadata says of one rpm.
type rpmInfo struct {
	href    string // relative to the target/arch repository
	sha256  string
	size    int64
	nevra   rpmutils.NEVRA
	hdr     *rpmutils.RpmHeader
	modTime int64
}

// RepoFile is the dnf .repo file that installs from the repository at
// uri for a target, with the metadata's and the packages' signatures
// checked.
func RepoFile(uri, targetName string) string {
	return fmt.Sprintf("[coach-%s]\nname=coach %s\nbaseurl=%s/rpm/%s/$basearch\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=%s/%s\n",
		targetName, targetName, uri, targetName, uri, KeyFile)
}

// RepoDir is where a target's repository for an rpm architecture is,
// relative to the repository's root: what a .repo file's baseurl names.
func RepoDir(targetName, arch string) string { return path.Join("rpm", targetName, arch) }

// Add publishes rpms: each goes to the repository of the target its file
// name says and the architecture its header says.
func (r *RPM) Add(ctx context.Context, rpms []string) (*RPMResult, error) {
	unlock, err := hold(ctx, r.Dir, r.Signer)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &RPMResult{}
	touched := map[string]bool{}
	for _, file := range rpms {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, t, err := pkg.Identify(file)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", file, err)
		}
		if t.Format != target.FormatRPM {
			return nil, fmt.Errorf("publish %s: target %s does not take rpms", file, t.Name)
		}
		info, err := readRPM(file)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", file, err)
		}
		repo := RepoDir(t.Name, info.nevra.Arch)
		rel := path.Join(repo, "Packages", strings.ToLower(info.nevra.Name[:1]), filepath.Base(file))
		wrote, err := place(file, r.Dir, rel, info.sha256)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", file, err)
		}
		if wrote {
			res.Added = append(res.Added, rel)
		} else {
			res.Present = append(res.Present, rel)
		}
		touched[repo] = true
	}
	// A repository signed by another key is signed again (a rotation).
	resign := map[string]bool{}
	mds, _ := filepath.Glob(filepath.Join(r.Dir, "rpm", "*", "*", "repodata", "repomd.xml.asc"))
	for _, m := range mds {
		if !signedBy(m, r.Signer) {
			rel, _ := filepath.Rel(r.Dir, filepath.Dir(filepath.Dir(m)))
			resign[filepath.ToSlash(rel)] = true
			touched[filepath.ToSlash(rel)] = true
		}
	}
	for _, repo := range slices.Sorted(maps.Keys(touched)) {
		changed, removed, err := r.index(repo, resign[repo])
		if err != nil {
			return nil, fmt.Errorf("publish to %s: %w", repo, err)
		}
		if changed {
			res.Repos = append(res.Repos, repo)
		}
		res.Removed = append(res.Removed, removed...)
	}
	return res, nil
}

// readRPM reads an rpm's header and hashes the whole file.
func readRPM(file string) (*rpmInfo, error) {
	return readRPMKnown(file, nil)
}

// readRPMKnown is readRPM, but for a file the last metadata already
// describes at this size (packages are never replaced), whose checksum it
// takes from there instead of reading the whole file again.
func readRPMKnown(file string, known map[string]knownRPM) (*rpmInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	k, ok := known[filepath.Base(file)]
	ok = ok && k.size == st.Size()
	var r io.Reader = f
	if !ok {
		r = io.TeeReader(f, h)
	}
	hdr, err := rpmutils.ReadHeader(r)
	if err != nil {
		return nil, fmt.Errorf("not an rpm: %w", err)
	}
	sum := k.sha256
	if !ok {
		if _, err := io.Copy(h, f); err != nil {
			return nil, err
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	nevra, err := hdr.GetNEVRA()
	if err != nil {
		return nil, err
	}
	if nevra.Epoch == "" {
		nevra.Epoch = "0"
	}
	return &rpmInfo{sha256: sum, size: st.Size(), nevra: *nevra, hdr: hdr}, nil
}

// knownRPM is what the last primary metadata says of a package file.
type knownRPM struct {
	sha256 string
	size   int64
}

// knownRPMs reads the checksums and sizes of the packages the current
// repomd's primary metadata lists, by file name.
func knownRPMs(base string, m *repomd) map[string]knownRPM {
	out := map[string]knownRPM{}
	if m == nil {
		return out
	}
	for _, d := range m.Data {
		if d.Type != "primary" {
			continue
		}
		f, err := os.Open(filepath.Join(base, filepath.FromSlash(d.Location.Href)))
		if err != nil {
			return out
		}
		defer f.Close()
		zr, err := gzip.NewReader(io.LimitReader(f, 1<<30))
		if err != nil {
			return out
		}
		var doc struct {
			Packages []struct {
				Checksum string `xml:"checksum"`
				Size     struct {
					Package int64 `xml:"package,attr"`
				} `xml:"size"`
				Location location `xml:"location"`
			} `xml:"package"`
		}
		if xml.NewDecoder(zr).Decode(&doc) != nil {
			return out
		}
		for _, p := range doc.Packages {
			out[path.Base(p.Location.Href)] = knownRPM{sha256: p.Checksum, size: p.Size.Package}
		}
	}
	return out
}

// index writes a repository's metadata for every rpm in its Packages/
// (after Keep), unless it would be what is there. The metadata files of
// the previous repomd.xml stay, for clients that read it a moment ago.
func (r *RPM) index(repo string, resign bool) (bool, []string, error) {
	base := filepath.Join(r.Dir, filepath.FromSlash(repo))
	files, _ := filepath.Glob(filepath.Join(base, "Packages", "*", "*.rpm"))
	old, _ := readRepomd(filepath.Join(base, "repodata", "repomd.xml"))
	known := knownRPMs(base, old)
	var infos []*rpmInfo
	for _, f := range files {
		info, err := readRPMKnown(f, known)
		if err != nil {
			return false, nil, fmt.Errorf("%s: %w", f, err)
		}
		rel, _ := filepath.Rel(base, f)
		info.href = filepath.ToSlash(rel)
		infos = append(infos, info)
	}
	// Newest first within a name.
	slices.SortStableFunc(infos, func(a, b *rpmInfo) int {
		if c := strings.Compare(a.nevra.Name, b.nevra.Name); c != 0 {
			return c
		}
		if c := rpmutils.NEVRAcmp(b.nevra, a.nevra); c != 0 {
			return c
		}
		return strings.Compare(a.href, b.href)
	})
	var removed []string
	if r.Keep > 0 {
		count := map[string]int{}
		kept := infos[:0]
		var dropped []*rpmInfo
		for _, in := range infos {
			if count[in.nevra.Name] < r.Keep {
				kept = append(kept, in)
			} else {
				dropped = append(dropped, in)
			}
			count[in.nevra.Name]++
		}
		infos = kept
		defer func() {
			// The files go after the metadata that no longer names them.
			for _, d := range dropped {
				os.Remove(filepath.Join(base, filepath.FromSlash(d.href)))
			}
		}()
		for _, d := range dropped {
			removed = append(removed, path.Join(repo, d.href))
		}
	}
	primary, filelists, other, err := metadata(infos)
	if err != nil {
		return false, nil, err
	}
	// Unchanged: the same uncompressed metadata as the current repomd.
	if !resign && old != nil && old.open("primary") == sum(primary) && old.open("filelists") == sum(filelists) && old.open("other") == sum(other) {
		return false, nil, nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	ts := now().Unix()
	var datas []repomdData
	for _, m := range []struct {
		kind string
		data []byte
	}{{"primary", primary}, {"filelists", filelists}, {"other", other}} {
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(m.data)
		if err := zw.Close(); err != nil {
			return false, nil, err
		}
		gzSum := sum(gz.Bytes())
		href := "repodata/" + gzSum + "-" + m.kind + ".xml.gz"
		p := filepath.Join(base, filepath.FromSlash(href))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, nil, err
		}
		if err := durable.WriteFile(p, gz.Bytes(), 0o644); err != nil {
			return false, nil, err
		}
		datas = append(datas, repomdData{Type: m.kind, Checksum: checksum{"sha256", gzSum}, OpenChecksum: checksum{"sha256", sum(m.data)},
			Location: location{href}, Timestamp: ts, Size: int64(gz.Len()), OpenSize: int64(len(m.data))})
	}
	doc := repomd{Xmlns: "http://linux.duke.edu/metadata/repo", XmlnsRPM: "http://linux.duke.edu/metadata/rpm", Revision: strconv.FormatInt(ts, 10), Data: datas}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return false, nil, err
	}
	out = append([]byte(xml.Header), append(out, '\n')...)
	sig, err := r.Signer.Armored(bytes.NewReader(out))
	if err != nil {
		return false, nil, err
	}
	if err := durable.WriteFile(filepath.Join(base, "repodata", "repomd.xml"), out, 0o644); err != nil {
		return false, nil, err
	}
	if err := durable.WriteFile(filepath.Join(base, "repodata", "repomd.xml.asc"), sig, 0o644); err != nil {
		return false, nil, err
	}
	// Metadata neither this repomd nor the previous one names goes.
	keep := map[string]bool{"repomd.xml": true, "repomd.xml.asc": true}
	for _, d := range datas {
		keep[path.Base(d.Location.Href)] = true
	}
	if old != nil {
		for _, d := range old.Data {
			keep[path.Base(d.Location.Href)] = true
		}
	}
	entries, _ := os.ReadDir(filepath.Join(base, "repodata"))
	for _, e := range entries {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(base, "repodata", e.Name()))
		}
	}
	if err := writeKey(r.Dir, r.Signer); err != nil {
		return false, nil, err
	}
	return true, removed, nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type checksum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type location struct {
	Href string `xml:"href,attr"`
}

type repomdData struct {
	Type         string   `xml:"type,attr"`
	Checksum     checksum `xml:"checksum"`
	OpenChecksum checksum `xml:"open-checksum"`
	Location     location `xml:"location"`
	Timestamp    int64    `xml:"timestamp"`
	Size         int64    `xml:"size"`
	OpenSize     int64    `xml:"open-size"`
}

type repomd struct {
	XMLName  xml.Name     `xml:"repomd"`
	Xmlns    string       `xml:"xmlns,attr"`
	XmlnsRPM string       `xml:"xmlns:rpm,attr"`
	Revision string       `xml:"revision"`
	Data     []repomdData `xml:"data"`
}

func (m *repomd) open(kind string) string {
	for _, d := range m.Data {
		if d.Type == kind {
			return d.OpenChecksum.Value
		}
	}
	return ""
}

func readRepomd(p string) (*repomd, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var m repomd
	if err := xml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// metadata writes primary.xml, filelists.xml and other.xml for rpms, as
// createrepo_c does (the fields dnf reads).
func metadata(infos []*rpmInfo) (primary, filelists, other []byte, err error) {
	var p, f, o bytes.Buffer
	n := len(infos)
	fmt.Fprintf(&p, "%s<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"%d\">\n", xml.Header, n)
	fmt.Fprintf(&f, "%s<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"%d\">\n", xml.Header, n)
	fmt.Fprintf(&o, "%s<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"%d\">\n", xml.Header, n)
	for _, in := range infos {
		h := in.hdr
		str := func(tag int) string { s, _ := h.GetString(tag); return s }
		num := func(tag int) int64 {
			v, err := h.GetInts(tag)
			if err != nil || len(v) == 0 {
				return 0
			}
			return int64(v[0])
		}
		nv := in.nevra
		ver := fmt.Sprintf(`<version epoch="%s" ver="%s" rel="%s"/>`, esc(nv.Epoch), esc(nv.Version), esc(nv.Release))
		files, ferr := h.GetFiles()
		if ferr != nil {
			return nil, nil, nil, ferr
		}
		installed, _ := h.InstalledSize()
		archive, _ := h.PayloadSize()
		rng := h.GetRange()
		fmt.Fprintf(&p, "<package type=\"rpm\">\n  <name>%s</name>\n  <arch>%s</arch>\n  %s\n", esc(nv.Name), esc(nv.Arch), ver)
		fmt.Fprintf(&p, "  <checksum type=\"sha256\" pkgid=\"YES\">%s</checksum>\n", in.sha256)
		fmt.Fprintf(&p, "  <summary>%s</summary>\n  <description>%s</description>\n  <packager>%s</packager>\n  <url>%s</url>\n",
			esc(str(rpmutils.SUMMARY)), escText(str(rpmutils.DESCRIPTION)), esc(str(rpmutils.PACKAGER)), esc(str(rpmutils.URL)))
		fmt.Fprintf(&p, "  <time file=\"%d\" build=\"%d\"/>\n  <size package=\"%d\" installed=\"%d\" archive=\"%d\"/>\n",
			num(rpmutils.BUILDTIME), num(rpmutils.BUILDTIME), in.size, installed, archive)
		fmt.Fprintf(&p, "  <location href=\"%s\"/>\n  <format>\n", esc(in.href))
		fmt.Fprintf(&p, "    <rpm:license>%s</rpm:license>\n    <rpm:vendor>%s</rpm:vendor>\n    <rpm:group>%s</rpm:group>\n    <rpm:buildhost>%s</rpm:buildhost>\n    <rpm:sourcerpm>%s</rpm:sourcerpm>\n",
			esc(str(rpmutils.LICENSE)), esc(str(rpmutils.VENDOR)), esc(str(rpmutils.GROUP)), esc(str(rpmutils.BUILDHOST)), esc(str(rpmutils.SOURCERPM)))
		fmt.Fprintf(&p, "    <rpm:header-range start=\"%d\" end=\"%d\"/>\n", rng.Start, rng.End)
		for _, dep := range []struct {
			elem                  string
			names, flags, version int
		}{
			{"provides", rpmutils.PROVIDENAME, rpmutils.PROVIDEFLAGS, rpmutils.PROVIDEVERSION},
			{"requires", rpmutils.REQUIRENAME, rpmutils.REQUIREFLAGS, rpmutils.REQUIREVERSION},
			{"conflicts", rpmutils.CONFLICTNAME, rpmutils.CONFLICTFLAGS, rpmutils.CONFLICTVERSION},
			{"obsoletes", rpmutils.OBSOLETENAME, rpmutils.OBSOLETEFLAGS, rpmutils.OBSOLETEVERSION},
		} {
			names, _ := h.GetStrings(dep.names)
			flags, _ := h.GetInts(dep.flags)
			versions, _ := h.GetStrings(dep.version)
			var entries []string
			for i, name := range names {
				if strings.HasPrefix(name, "rpmlib(") {
					continue // rpm's own capabilities: createrepo_c leaves them out
				}
				e := fmt.Sprintf(`<rpm:entry name="%s"`, esc(name))
				if i < len(flags) && i < len(versions) && versions[i] != "" {
					e += fmt.Sprintf(` flags="%s"`, flagName(flags[i]))
					ep, vr := "0", versions[i]
					if a, b, ok := strings.Cut(vr, ":"); ok {
						ep, vr = a, b
					}
					v, rel, _ := strings.Cut(vr, "-")
					e += fmt.Sprintf(` epoch="%s" ver="%s"`, esc(ep), esc(v))
					if rel != "" {
						e += fmt.Sprintf(` rel="%s"`, esc(rel))
					}
				}
				if dep.elem == "requires" && i < len(flags) && flags[i]&(1<<6|1<<9|1<<10) != 0 {
					e += ` pre="1"`
				}
				entries = append(entries, e+"/>")
			}
			if len(entries) > 0 {
				fmt.Fprintf(&p, "    <rpm:%s>\n      %s\n    </rpm:%s>\n", dep.elem, strings.Join(entries, "\n      "), dep.elem)
			}
		}
		fmt.Fprintf(&f, "<package pkgid=\"%s\" name=\"%s\" arch=\"%s\">\n  %s\n", in.sha256, esc(nv.Name), esc(nv.Arch), ver)
		for _, fi := range files {
			kind := ""
			switch {
			case fi.Mode()&0o170000 == 0o040000:
				kind = ` type="dir"`
			case fi.Flags()&(1<<6) != 0: // RPMFILE_GHOST
				kind = ` type="ghost"`
			}
			fmt.Fprintf(&f, "  <file%s>%s</file>\n", kind, esc(fi.Name()))
			if kind == "" && (strings.HasPrefix(fi.Name(), "/etc/") || strings.Contains(fi.Name(), "bin/")) {
				fmt.Fprintf(&p, "    <file>%s</file>\n", esc(fi.Name()))
			}
		}
		fmt.Fprintf(&p, "  </format>\n</package>\n")
		fmt.Fprintf(&f, "</package>\n")
		fmt.Fprintf(&o, "<package pkgid=\"%s\" name=\"%s\" arch=\"%s\">\n  %s\n", in.sha256, esc(nv.Name), esc(nv.Arch), ver)
		times, _ := h.GetInts(rpmutils.CHANGELOGTIME)
		authors, _ := h.GetStrings(rpmutils.CHANGELOGNAME)
		texts, _ := h.GetStrings(rpmutils.CHANGELOGTEXT)
		for i := range min(len(times), len(authors), len(texts)) {
			fmt.Fprintf(&o, "  <changelog author=\"%s\" date=\"%d\">%s</changelog>\n", esc(authors[i]), times[i], escText(texts[i]))
		}
		fmt.Fprintf(&o, "</package>\n")
	}
	p.WriteString("</metadata>\n")
	f.WriteString("</filelists>\n")
	o.WriteString("</otherdata>\n")
	return p.Bytes(), f.Bytes(), o.Bytes(), nil
}

// flagName is a dependency's comparison as the metadata spells it.
func flagName(flags int) string {
	switch flags & 0xe {
	case 2:
		return "LT"
	case 4:
		return "GT"
	case 8:
		return "EQ"
	case 10:
		return "LE"
	case 12:
		return "GE"
	}
	return ""
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// escText escapes element text as esc does, but keeps its line breaks
// as they are (as createrepo_c writes a description).
func escText(s string) string { return strings.ReplaceAll(esc(s), "&#xA;", "\n") }
