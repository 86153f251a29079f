package pkg

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/md5" //nolint:gosec // md5sums is dpkg's format, not a security check
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"

	"github.com/coach-build/coach/pipeline/target"
)

// writeDeb writes the deb that info describes. It is coach's own writer,
// not nfpm's: nfpm builds the whole data member in memory before it
// writes a byte, which costs about three times the package size in RSS
// and serialises compression behind the reading of every file. Here the
// data member streams through a compressor running beside the reader
// into a temporary file in work, so memory stays at the compressor's
// windows, and the ar archive is written once the member's size is known.
// nfpm still prepares the contents (implicit directories, order, modes)
// and names the file. With a signer, an armored detached signature of
// debian-binary, control and data concatenated follows them as the
// _gpgorigin member (debsig-verify's and nfpm's "origin" layout); the
// other members are the bytes an unsigned deb holds.
func writeDeb(info *nfpm.Info, work string, signer *Signer, out io.Writer) error {
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return err
	}
	data, err := os.CreateTemp(work, "data.tar.*")
	if err != nil {
		return err
	}
	defer os.Remove(data.Name())
	defer data.Close()
	member, sums, size, err := writeDataTar(info, data)
	if err != nil {
		return fmt.Errorf("data member: %w", err)
	}
	control, err := controlTar(info, size, sums)
	if err != nil {
		return fmt.Errorf("control member: %w", err)
	}
	dataSize, err := data.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	var signature []byte
	if signer != nil {
		if _, err := data.Seek(0, io.SeekStart); err != nil {
			return err
		}
		signature, err = signer.Armored(io.MultiReader(strings.NewReader(debianBinary), bytes.NewReader(control), data))
		if err != nil {
			return err
		}
	}
	if _, err := data.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.WriteString(out, "!<arch>\n"); err != nil {
		return err
	}
	member_ := func(name string, size int64, body io.Reader) error {
		return writeArMember(out, name, info.MTime, size, body)
	}
	if err := member_("debian-binary", int64(len(debianBinary)), strings.NewReader(debianBinary)); err != nil {
		return err
	}
	if err := member_("control.tar.gz", int64(len(control)), bytes.NewReader(control)); err != nil {
		return err
	}
	if err := member_(member, dataSize, data); err != nil {
		return err
	}
	if signature == nil {
		return nil
	}
	return member_("_gpgorigin", int64(len(signature)), bytes.NewReader(signature))
}

// debianBinary is the deb format's version member.
const debianBinary = "2.0\n"

// writeArMember writes one member of an ar archive, in the common format
// dpkg reads: a 60-byte header (name, time, owner 0:0, mode 644, size),
// the body, and a newline when the size is odd. (blakesmith/ar, which
// nfpm uses, pads after every odd-sized Write, so it cannot stream.)
func writeArMember(w io.Writer, name string, mtime time.Time, size int64, body io.Reader) error {
	if len(name) > 16 {
		return fmt.Errorf("ar member name %q is longer than 16 bytes", name)
	}
	if _, err := fmt.Fprintf(w, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, max(mtime.Unix(), 0), 0, 0, 0o100644, size); err != nil {
		return err
	}
	n, err := io.Copy(w, body)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("ar member %s: wrote %d bytes of %d", name, n, size)
	}
	if size%2 == 1 {
		_, err = io.WriteString(w, "\n")
	}
	return err
}

// newCompressor opens a payload's compressor: parallel gzip (pgzip,
// in fixed 1 MiB blocks, so its output does not depend on the core
// count), zstd on another core than the reader (one frame: dpkg 1.21 reads only the first of several), xz, or none. Each is
// deterministic for a given level.
func newCompressor(setting string, mtime time.Time, w io.Writer) (io.WriteCloser, string, error) {
	kind, levelText, _ := strings.Cut(setting, ":")
	level := -1
	if levelText != "" {
		n, err := strconv.Atoi(levelText)
		if err != nil {
			return nil, "", fmt.Errorf("compression %q: the level is not a number", setting)
		}
		level = n
	}
	switch kind {
	case "gzip":
		zw, err := pgzip.NewWriterLevel(w, cmp.Or(max(level, 0), 9))
		if err != nil {
			return nil, "", err
		}
		zw.ModTime = mtime
		if err := zw.SetConcurrency(1<<20, 2*runtime.GOMAXPROCS(0)); err != nil {
			return nil, "", err
		}
		return zw, "gzip", nil
	case "zstd":
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(cmp.Or(max(level, 0), 3))))
		if err != nil {
			return nil, "", err
		}
		return &chainCloser{newAsyncWriter(zw, 1<<20, 4), zw}, "zstd", nil
	case "xz":
		zw, err := xz.NewWriter(w)
		if err != nil {
			return nil, "", err
		}
		return zw, "xz", nil
	case "none":
		return nopWriteCloser{w}, "none", nil
	}
	return nil, "", fmt.Errorf("unknown compression %q", setting)
}

// chainCloser writes to an asyncWriter in front of a compressor and
// closes both, in that order.
type chainCloser struct {
	*asyncWriter
	zw io.WriteCloser
}

func (c *chainCloser) Close() error {
	err := c.asyncWriter.Close()
	if zerr := c.zw.Close(); err == nil {
		err = zerr
	}
	return err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// writeDataTar streams the contents as a tar through the compressor into
// w, and returns the member's name, the md5sums file and the installed
// size in KiB, counted as dpkg-gencontrol does: each file's size rounded
// up to a KiB, and one KiB for each other entry.
func writeDataTar(info *nfpm.Info, w io.Writer) (name string, sums []byte, kib int64, err error) {
	zw, kind, err := newCompressor(info.Deb.Compression, info.MTime, w)
	if err != nil {
		return "", nil, 0, err
	}
	name = map[string]string{"gzip": "data.tar.gz", "zstd": "data.tar.zst", "xz": "data.tar.xz", "none": "data.tar"}[kind]
	defer zw.Close()
	tw := tar.NewWriter(zw)
	var md5sums bytes.Buffer
	buf := make([]byte, 256<<10)
	links := hardLinks(info.Contents)
	linkSums := map[string]string{} // a file's md5sums line, for its hard links
	for _, c := range info.Contents {
		h := &tar.Header{
			Name: files.AsExplicitRelativePath(c.Destination), ModTime: info.MTime,
			Uname: cmp.Or(c.FileInfo.Owner, "root"), Gname: cmp.Or(c.FileInfo.Group, "root"),
			Mode: tarMode(c.Mode()), Format: tar.FormatGNU,
		}
		switch c.Type {
		case files.TypeRPMGhost:
			continue // an rpm-only entry
		case files.TypeFile, files.TypeConfig, files.TypeConfigNoReplace, files.TypeConfigMissingOK,
			files.TypeRPMDoc, files.TypeRPMLicence, files.TypeRPMLicense, files.TypeRPMReadme:
			if first, ok := links[c.Destination]; ok {
				// A hard link of a file already written: dpkg makes it a
				// link, and it takes no more room (dpkg-gencontrol counts
				// an inode once).
				h.Typeflag, h.Linkname = tar.TypeLink, files.AsExplicitRelativePath(first)
				if err := tw.WriteHeader(h); err != nil {
					return "", nil, 0, err
				}
				fmt.Fprintf(&md5sums, "%s  %s\n", linkSums[first], files.AsRelativePath(h.Name))
				continue
			}
			sum, err := copyFileToTar(tw, h, c.Source, buf, &md5sums)
			if err != nil {
				return "", nil, 0, fmt.Errorf("%s: %w", c.Destination, err)
			}
			linkSums[c.Destination] = sum
			kib += (h.Size + 1023) / 1024
			continue
		case files.TypeDir, files.TypeImplicitDir:
			h.Typeflag = tar.TypeDir
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
		case files.TypeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, c.Source
		default:
			return "", nil, 0, fmt.Errorf("%s: content type %q cannot be written to a deb", c.Destination, c.Type)
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", nil, 0, err
		}
		kib++
	}
	if err := tw.Close(); err != nil {
		return "", nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return "", nil, 0, err
	}
	return name, md5sums.Bytes(), kib, nil
}

// copyFileToTar writes one regular file, its size taken from the open
// file (not from an earlier stat), appends its md5sums line and returns
// its md5 in hex.
func copyFileToTar(tw *tar.Writer, h *tar.Header, src string, buf []byte, sums *bytes.Buffer) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", src)
	}
	h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	if err := tw.WriteHeader(h); err != nil {
		return "", err
	}
	sum := md5.New() //nolint:gosec
	n, err := io.CopyBuffer(io.MultiWriter(tw, sum), io.LimitReader(f, h.Size), buf)
	if err != nil {
		return "", err
	}
	if n != h.Size {
		return "", fmt.Errorf("%s shrank while it was packaged", src)
	}
	hexSum := fmt.Sprintf("%x", sum.Sum(nil))
	fmt.Fprintf(sums, "%s  %s\n", hexSum, files.AsRelativePath(h.Name))
	return hexSum, nil
}

// tarMode is a file mode as tar stores it, with the setuid, setgid and
// sticky bits in their Unix places.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// controlTar is control.tar.gz: control, md5sums, conffiles and the
// maintainer scripts.
func controlTar(info *nfpm.Info, kib int64, sums []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.ModTime = info.MTime
	tw := tar.NewWriter(zw)
	add := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Size: int64(len(body)), Mode: mode, ModTime: info.MTime,
			Uname: "root", Gname: "root", Typeflag: tar.TypeReg, Format: tar.FormatGNU}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "./", Mode: 0o755, ModTime: info.MTime, Uname: "root", Gname: "root",
		Typeflag: tar.TypeDir, Format: tar.FormatGNU}); err != nil {
		return nil, err
	}
	if err := add("control", 0o644, debControl(info, kib)); err != nil {
		return nil, err
	}
	if len(sums) > 0 {
		if err := add("md5sums", 0o644, sums); err != nil {
			return nil, err
		}
	}
	var conf strings.Builder
	for _, c := range info.Contents {
		switch c.Type {
		case files.TypeConfig, files.TypeConfigNoReplace, files.TypeConfigMissingOK:
			conf.WriteString(files.NormalizeAbsoluteFilePath(c.Destination) + "\n")
		}
	}
	if conf.Len() > 0 {
		if err := add("conffiles", 0o644, []byte(conf.String())); err != nil {
			return nil, err
		}
	}
	for _, s := range []struct{ name, file string }{
		{"preinst", info.Scripts.PreInstall}, {"postinst", info.Scripts.PostInstall},
		{"prerm", info.Scripts.PreRemove}, {"postrm", info.Scripts.PostRemove},
	} {
		if s.file == "" {
			continue
		}
		body, err := os.ReadFile(s.file)
		if err != nil {
			return nil, err
		}
		if err := add(s.name, 0o755, body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// debUpstream is the upstream part of a deb version: a pre-release after
// "~" (so it sorts before the release), build metadata after "+".
func debUpstream(info *nfpm.Info) string {
	v := info.Version
	if info.Prerelease != "" {
		v += "~" + info.Prerelease
	}
	if info.VersionMetadata != "" {
		v += "+" + info.VersionMetadata
	}
	return v
}

// debControl is the control file, its fields in the order dpkg-deb
// writes them, empty ones left out.
func debControl(info *nfpm.Info, kib int64) []byte {
	var b strings.Builder
	field := func(name, value string) {
		if value = strings.TrimSpace(value); value != "" {
			fmt.Fprintf(&b, "%s: %s\n", name, value)
		}
	}
	list := func(name string, values []string) {
		var kept []string
		for _, v := range values {
			if v = strings.TrimSpace(v); v != "" {
				kept = append(kept, v)
			}
		}
		field(name, strings.Join(kept, ", "))
	}
	version := debUpstream(info)
	if info.Epoch != "" {
		version = info.Epoch + ":" + version
	}
	if info.Release != "" {
		version += "-" + info.Release
	}
	field("Package", info.Name)
	field("Version", version)
	field("Section", info.Section)
	field("Priority", info.Priority)
	field("Architecture", FormatArch(target.FormatDeb, info.Arch))
	field("Maintainer", info.Maintainer)
	field("Installed-Size", strconv.FormatInt(kib, 10))
	list("Replaces", info.Replaces)
	list("Provides", info.Provides)
	list("Pre-Depends", info.Deb.Predepends)
	list("Depends", info.Depends)
	list("Recommends", info.Recommends)
	list("Suggests", info.Suggests)
	list("Conflicts", info.Conflicts)
	list("Breaks", info.Deb.Breaks)
	field("Homepage", info.Homepage)
	summary, long, _ := strings.Cut(strings.TrimSpace(info.Description), "\n")
	fmt.Fprintf(&b, "Description: %s\n", strings.TrimSpace(summary))
	for _, l := range strings.Split(long, "\n") {
		if long == "" {
			break
		}
		if l = strings.TrimSpace(l); l == "" {
			l = "."
		}
		fmt.Fprintf(&b, " %s\n", l)
	}
	return []byte(b.String())
}
