// Package publish adds the packages of release directories to the
// repositories users install from: a signed apt repository (pool/ and
// dists/, with by-hash indexes, InRelease and Release.gpg).
//
// A publication is atomic for clients: the packages go into the pool
// first, then each index under its by-hash name, then the indexes under
// their plain names, and the signed Release files last, so a client never
// reads an index that names a file not yet there, nor (with by-hash, which
// apt uses when the Release says Acquire-By-Hash) a Release whose hashes
// its indexes do not match. Publishing the same packages again changes
// nothing, and the same packages and key give the same repository but
// for the Release's Date.
package publish

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ulikunitz/xz"
	"pault.ag/go/debian/control"
	"pault.ag/go/debian/deb"
	"pault.ag/go/debian/version"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/target"
)

// KeyFile is the repository's public key, armored, at its top: what a
// sources entry's signed-by names.
const KeyFile = "archive-key.asc"

// Apt is an apt repository in a directory.
type Apt struct {
	// Dir is the repository's root: pool/, dists/ and KeyFile.
	Dir string
	// Component is the one component packages go to (main when empty).
	Component string
	// Origin and Label are the Release files' (coach when empty).
	Origin, Label string
	// Signer signs InRelease and Release.gpg.
	Signer *pkg.Signer
	// Keep is how many versions of each package an index keeps (the
	// newest, by Debian's version order); 0 keeps every version.
	Keep int
	// Now dates the Release files (time.Now when nil).
	Now func() time.Time
}

// AptResult says what a publication did.
type AptResult struct {
	// Added are the pool files written; Present those already there with
	// the same bytes.
	Added, Present []string
	// Removed are the pool files no index names any more (Keep).
	Removed []string
	// Suites are the suites whose indexes changed and were signed again.
	Suites []string
}

// entry is one package of an index: its stanza, and the fields that
// order and identify it.
type entry struct {
	name, arch, filename string
	ver                  version.Version
	para                 control.Paragraph
	// raw is the stanza as an index holds it, written back as it is (a
	// parsed paragraph does not render to the same bytes).
	raw string
}

// stanza is the entry's text in an index, with its final line break.
func (e entry) stanza() string {
	if e.raw != "" {
		return e.raw
	}
	var b bytes.Buffer
	e.para.WriteTo(&b)
	return b.String()
}

// Add publishes debs: every one goes to the suite of the target its file
// name says (name_version+tag_arch.deb, as coach names them). One
// publication at a time holds the repository; another waits.
func (a *Apt) Add(ctx context.Context, debs []string) (*AptResult, error) {
	unlock, err := hold(ctx, a.Dir, a.Signer)
	if err != nil {
		return nil, err
	}
	defer unlock()
	comp := a.component()

	res := &AptResult{}
	added := map[string][]entry{} // suite -> new entries
	for _, file := range debs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, t, err := pkg.Identify(file)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", file, err)
		}
		if t.Format != target.FormatDeb || t.Bootstrap.Suite == "" {
			return nil, fmt.Errorf("publish %s: target %s has no apt suite", file, t.Name)
		}
		e, wrote, err := a.addToPool(file, comp)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", file, err)
		}
		if wrote {
			res.Added = append(res.Added, e.filename)
		} else {
			res.Present = append(res.Present, e.filename)
		}
		added[t.Bootstrap.Suite] = append(added[t.Bootstrap.Suite], e)
	}

	dropped := map[string]bool{}
	// A suite signed by another key is signed again, changed or not:
	// after a key rotation, clients that have only the new key must be
	// able to read every suite.
	signed, _ := filepath.Glob(filepath.Join(a.Dir, "dists", "*", "InRelease"))
	resign := map[string]bool{}
	for _, f := range signed {
		if !signedBy(f, a.Signer) {
			suite := filepath.Base(filepath.Dir(f))
			resign[suite] = true
			if _, ok := added[suite]; !ok {
				added[suite] = nil
			}
		}
	}
	suites := slices.Sorted(maps.Keys(added))
	for _, suite := range suites {
		changed, gone, err := a.updateSuite(suite, comp, added[suite], resign[suite])
		if err != nil {
			return nil, fmt.Errorf("publish to %s: %w", suite, err)
		}
		if changed {
			res.Suites = append(res.Suites, suite)
		}
		for _, f := range gone {
			dropped[f] = true
		}
	}
	if err := writeKey(a.Dir, a.Signer); err != nil {
		return nil, err
	}
	// Pool files no index names any more go last, once every index that
	// named them has been replaced.
	if len(dropped) > 0 {
		named, err := a.namedFiles()
		if err != nil {
			return nil, err
		}
		for _, f := range slices.Sorted(maps.Keys(dropped)) {
			if named[f] {
				continue
			}
			if err := os.Remove(filepath.Join(a.Dir, filepath.FromSlash(f))); err != nil && !os.IsNotExist(err) {
				return nil, fmt.Errorf("publish: %w", err)
			}
			res.Removed = append(res.Removed, f)
		}
	}
	return res, nil
}

func (a *Apt) component() string {
	if a.Component == "" {
		return "main"
	}
	return a.Component
}

// poolDir is Debian's pool layout: pool/main/h/hello, pool/main/libf/libfoo.
func poolDir(comp, source string) string {
	prefix := source[:1]
	if strings.HasPrefix(source, "lib") && len(source) > 3 {
		prefix = source[:4]
	}
	return path.Join("pool", comp, prefix, source)
}

// addToPool copies a deb into the pool (place) and returns its index
// entry.
func (a *Apt) addToPool(file, comp string) (entry, bool, error) {
	d, closer, err := deb.LoadFile(file)
	if err != nil {
		return entry{}, false, fmt.Errorf("read its control: %w", err)
	}
	ctl := d.Control
	closer()
	if ctl.Package == "" || ctl.Architecture.String() == "" {
		return entry{}, false, errors.New("its control has no Package or Architecture")
	}
	f, err := os.Open(file)
	if err != nil {
		return entry{}, false, err
	}
	defer f.Close()
	md, sh := md5.New(), sha256.New()
	size, err := io.Copy(io.MultiWriter(md, sh), f)
	if err != nil {
		return entry{}, false, err
	}
	sum := hex.EncodeToString(sh.Sum(nil))
	rel := path.Join(poolDir(comp, ctl.SourceName()), filepath.Base(file))
	e := entry{name: ctl.Package, arch: ctl.Architecture.String(), filename: rel, ver: ctl.Version}
	// The stanza: the package's own control fields, then where it is and
	// its hashes.
	para := control.Paragraph{Values: map[string]string{}}
	for _, k := range ctl.Paragraph.Order {
		para.Set(k, ctl.Paragraph.Values[k])
	}
	para.Set("Filename", rel)
	para.Set("Size", fmt.Sprint(size))
	para.Set("MD5sum", hex.EncodeToString(md.Sum(nil)))
	para.Set("SHA256", sum)
	e.para = para

	wrote, err := place(file, a.Dir, rel, sum)
	return e, wrote, err
}

// hold makes the repository's directory and takes its lock, which one
// publication at a time holds, for the apt and the dnf side alike; then
// it sweeps what a publication killed before left.
func hold(ctx context.Context, dir string, s *pkg.Signer) (unlock func(), err error) {
	if s == nil {
		return nil, errors.New("publish: a repository is signed: give a signing key")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	unlock, err = lockfile.Lock(ctx, filepath.Join(dir, ".coach-publish.lock"), 100*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	sweep(dir)
	return unlock, nil
}

// place copies file to rel in the repository at dir, unless rel already
// holds the same bytes (sha256 sum). A different file of the same name is
// never replaced: a published version's bytes do not change under clients.
func place(file, dir, rel, sum string) (wrote bool, err error) {
	dst := filepath.Join(dir, filepath.FromSlash(rel))
	if have, err := digest.File(dst); err == nil {
		if have = strings.TrimPrefix(have, digest.Prefix); have != sum {
			return false, fmt.Errorf("%s is already in the repository with other bytes (sha256 %s); a published version is never replaced: publish a new iteration", rel, have)
		}
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := durable.WriteFrom(dst, f, 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// updateSuite merges new entries into the suite's indexes, applies Keep,
// and, when an index changed, writes the indexes and a new signed
// Release. It returns the pool files the suite's indexes dropped.
func (a *Apt) updateSuite(suite, comp string, added []entry, resign bool) (bool, []string, error) {
	base := filepath.Join(a.Dir, "dists", suite)
	byArch := map[string][]entry{}
	// What the suite's indexes hold now.
	archDirs, _ := filepath.Glob(filepath.Join(base, comp, "binary-*"))
	for _, dir := range archDirs {
		arch := strings.TrimPrefix(filepath.Base(dir), "binary-")
		old, err := readPackages(filepath.Join(dir, "Packages"))
		if err != nil {
			return false, nil, err
		}
		byArch[arch] = old
	}
	// What the indexes hold, byte for byte: a publication that would
	// write the same bytes changes nothing.
	before := map[string]string{}
	for arch := range byArch {
		data, _ := os.ReadFile(filepath.Join(base, comp, "binary-"+arch, "Packages"))
		before[arch] = string(data)
	}
	for _, e := range added {
		es := slices.DeleteFunc(byArch[e.arch], func(o entry) bool {
			return o.name == e.name && version.Compare(o.ver, e.ver) == 0
		})
		byArch[e.arch] = append(es, e)
	}
	var gone []string
	for arch, es := range byArch {
		sortEntries(es)
		if a.Keep > 0 {
			var kept []entry
			count := map[string]int{}
			// Newest first per package: sortEntries orders versions
			// down within a name.
			for _, e := range es {
				if count[e.name] < a.Keep {
					kept = append(kept, e)
				} else {
					gone = append(gone, e.filename)
				}
				count[e.name]++
			}
			es = kept
		}
		byArch[arch] = es
	}
	changed := false
	for arch, es := range byArch {
		if string(renderPackages(es)) != before[arch] {
			changed = true
		}
	}
	if !changed && !resign {
		if _, err := os.Stat(filepath.Join(base, "InRelease")); err == nil {
			return false, nil, nil
		}
	}
	arches := slices.Sorted(maps.Keys(byArch))
	var sums []indexFile
	for _, arch := range arches {
		files, err := a.writeIndexes(base, path.Join(comp, "binary-"+arch), renderPackages(byArch[arch]))
		if err != nil {
			return false, nil, err
		}
		sums = append(sums, files...)
	}
	if err := a.writeRelease(base, suite, comp, arches, sums); err != nil {
		return false, nil, err
	}
	return true, gone, nil
}

// sortEntries orders an index: by name, then version newest first, then
// architecture.
func sortEntries(es []entry) {
	slices.SortStableFunc(es, func(x, y entry) int {
		if c := strings.Compare(x.name, y.name); c != 0 {
			return c
		}
		if c := version.Compare(y.ver, x.ver); c != 0 {
			return c
		}
		return strings.Compare(x.arch, y.arch)
	})
}

func renderPackages(es []entry) []byte {
	var b bytes.Buffer
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.stanza())
	}
	return b.Bytes()
}

// readPackages reads an index this package wrote (missing: empty).
func readPackages(file string) ([]entry, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, raw := range strings.Split(string(data), "\n\n") {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		raw = strings.TrimRight(raw, "\n") + "\n"
		r, err := control.NewParagraphReader(bufio.NewReader(strings.NewReader(raw)), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		p, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		v, err := version.Parse(p.Values["Version"])
		if err != nil {
			return nil, fmt.Errorf("%s: package %s: %w", file, p.Values["Package"], err)
		}
		out = append(out, entry{name: p.Values["Package"], arch: p.Values["Architecture"], filename: p.Values["Filename"], ver: v, para: *p, raw: raw})
	}
	return out, nil
}

// indexFile is a file a Release lists.
type indexFile struct {
	name   string // relative to dists/<suite>
	size   int64
	sha256 string
}

// writeIndexes writes Packages, Packages.gz and Packages.xz in dir (under
// base): each under its by-hash name first, then under its own.
func (a *Apt) writeIndexes(base, dir string, plain []byte) ([]indexFile, error) {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // no name, no time: reproducible
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var x bytes.Buffer
	xw, err := xz.NewWriter(&x)
	if err != nil {
		return nil, err
	}
	xw.Write(plain)
	if err := xw.Close(); err != nil {
		return nil, err
	}
	var out []indexFile
	for _, f := range []struct {
		name string
		data []byte
	}{{"Packages", plain}, {"Packages.gz", gz.Bytes()}, {"Packages.xz", x.Bytes()}} {
		sum := sha256.Sum256(f.data)
		hexSum := hex.EncodeToString(sum[:])
		byHash := filepath.Join(base, filepath.FromSlash(dir), "by-hash", "SHA256", hexSum)
		if _, err := os.Stat(byHash); err != nil {
			if err := os.MkdirAll(filepath.Dir(byHash), 0o755); err != nil {
				return nil, err
			}
			if err := durable.WriteFile(byHash, f.data, 0o644); err != nil {
				return nil, err
			}
		}
		out = append(out, indexFile{name: path.Join(dir, f.name), size: int64(len(f.data)), sha256: hexSum})
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"Packages", plain}, {"Packages.gz", gz.Bytes()}, {"Packages.xz", x.Bytes()}} {
		if err := durable.WriteFile(filepath.Join(base, filepath.FromSlash(dir), f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeRelease writes Release and Release.gpg, then InRelease, the file
// apt reads first, last.
func (a *Apt) writeRelease(base, suite, comp string, arches []string, files []indexFile) error {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	origin, label := a.Origin, a.Label
	if origin == "" {
		origin = "coach"
	}
	if label == "" {
		label = origin
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Origin: %s\nLabel: %s\nSuite: %s\nCodename: %s\n", origin, label, suite, suite)
	fmt.Fprintf(&b, "Date: %s\n", now().UTC().Format("Mon, 02 Jan 2006 15:04:05 UTC"))
	fmt.Fprintf(&b, "Architectures: %s\nComponents: %s\nAcquire-By-Hash: yes\n", strings.Join(arches, " "), comp)
	b.WriteString("SHA256:\n")
	slices.SortFunc(files, func(x, y indexFile) int { return strings.Compare(x.name, y.name) })
	for _, f := range files {
		fmt.Fprintf(&b, " %s %16d %s\n", f.sha256, f.size, f.name)
	}
	release := b.Bytes()
	sig, err := a.Signer.Armored(bytes.NewReader(release))
	if err != nil {
		return err
	}
	inRelease, err := a.Signer.ClearSigned(release)
	if err != nil {
		return err
	}
	// HTTP servers say Last-Modified to the second, and apt asks
	// If-Modified-Since: a Release replaced within the second of the one
	// before would look unchanged. Its time is moved on past that second.
	var after time.Time
	if st, err := os.Stat(filepath.Join(base, "InRelease")); err == nil {
		after = st.ModTime().Truncate(time.Second).Add(time.Second)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"Release", release}, {"Release.gpg", sig}, {"InRelease", inRelease}} {
		p := filepath.Join(base, f.name)
		if err := durable.WriteFile(p, f.data, 0o644); err != nil {
			return err
		}
		if st, err := os.Stat(p); err == nil && st.ModTime().Before(after) {
			if err := os.Chtimes(p, after, after); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeKey writes the signer's public key as the repository's KeyFile,
// unless it is there already.
func writeKey(dir string, s *pkg.Signer) error {
	key, err := s.PublicKey()
	if err != nil {
		return err
	}
	p := filepath.Join(dir, KeyFile)
	if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, key) {
		return nil
	}
	return durable.WriteFile(p, key, 0o644)
}

// namedFiles are the pool files every suite's indexes name.
func (a *Apt) namedFiles() (map[string]bool, error) {
	named := map[string]bool{}
	indexes, _ := filepath.Glob(filepath.Join(a.Dir, "dists", "*", "*", "binary-*", "Packages"))
	for _, idx := range indexes {
		es, err := readPackages(idx)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			named[e.filename] = true
		}
	}
	return named, nil
}

// SourcesEntry is the deb822 sources entry that installs from the
// repository at uri for suite, with the key at keyPath.
func SourcesEntry(uri, suite, component, keyPath string) string {
	if component == "" {
		component = "main"
	}
	return fmt.Sprintf("Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: %s\n", uri, suite, component, keyPath)
}

// sweep removes what a publication killed half way left: the temporary
// files durable writes (.<name>.tmp-<random>), never a published file.
// Only a holder of the repository's lock calls it, so no temporary file
// is in use.
func sweep(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".tmp-") {
			os.Remove(p)
		}
		return nil
	})
}

// signedBy says whether the last signature in file (an InRelease, a
// detached armored signature) was made by the signer's signing key.
func signedBy(file string, s *pkg.Signer) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	i := bytes.LastIndex(data, []byte("-----BEGIN PGP SIGNATURE-----"))
	if i < 0 {
		return false
	}
	blk, err := armor.Decode(bytes.NewReader(data[i:]))
	if err != nil {
		return false
	}
	p, err := packet.Read(blk.Body)
	if err != nil {
		return false
	}
	sig, ok := p.(*packet.Signature)
	return ok && sig.IssuerKeyId != nil && fmt.Sprintf("%016X", *sig.IssuerKeyId) == s.KeyID
}
