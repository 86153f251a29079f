// Package pkg writes one deb or rpm per target (nfpm prepares the contents,
// coach's streaming writers write them): the
// built tree with every file owned by root, the project's links and config
// files, the lifecycle hooks from scripts/<project>/, the metadata and the
// runtime dependencies the health check derived, named and versioned the
// way each distribution expects, byte for byte reproducible.
package pkg

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Options say what to package.
type Options struct {
	Project *spec.Project
	// Root is the repository root; hooks are read from Root/<hook path>.
	Root   string
	Target target.Target
	Arch   string // Go architecture name
	// Tree is the host directory holding the install dir's contents.
	Tree string
	// Depends are the runtime dependencies the health check derived; the
	// project's own runtime_dependencies are added to them.
	Depends []string
	// MTime is every file's and the package's time (SOURCE_DATE_EPOCH).
	MTime time.Time
	// OutDir receives the package.
	OutDir string
	// Extra are more files to package (the license summary).
	Extra files.Contents
	// Summary is the license summary, for /usr/share/doc/<name>/copyright;
	// Embedded names the components ("zlib 1.3.1"), for the description.
	Summary  []byte
	Embedded []string
	// WorkDir holds stripped copies and generated files while packaging.
	WorkDir string
	// SignKey is a GPG private key file to sign with; the passphrase comes
	// from the environment variable named by SignPassphraseEnv.
	SignKey           string
	SignPassphraseEnv string
	// Signer, when set, signs instead of a key loaded from SignKey (a
	// release loads its key once for all its packages).
	Signer *Signer
	// Expected, when set, is the hex sha256 each regular file of the tree
	// must have (path relative to the tree); a file that differs, or that
	// it does not list, is a *CorruptFileError.
	Expected map[string]string
}

// CorruptFileError is a file of the tree that is not what its layer
// recorded.
type CorruptFileError struct {
	Path      string // relative to the tree
	Want, Got string
}

func (e *CorruptFileError) Error() string {
	if e.Want == "" {
		return fmt.Sprintf("%s is in the tree but in no layer's manifest", e.Path)
	}
	return fmt.Sprintf("%s hashes to sha256:%s, not to the sha256:%s its layer recorded", e.Path, e.Got, e.Want)
}

// Artifact is a written package.
type Artifact struct {
	Target   string `json:"target"`
	Format   string `json:"format"`
	File     string `json:"file"`
	Path     string `json:"path"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Release  string `json:"release"`
	Arch     string `json:"arch"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Files    int    `json:"files"`
	Signed   bool   `json:"signed"`
	Compress string `json:"compression"`
	// Kept is a package of another target that an earlier build of the same
	// release wrote from the same components, kept in the release.
	Kept bool `json:"kept,omitempty"`
	// InputKey is the digest of what the package was made from; Reused
	// says this build took it from the previous release, made from the
	// same inputs, instead of making it again.
	InputKey string `json:"input_key,omitempty"`
	Reused   bool   `json:"reused,omitempty"`
}

// PackageRelease is the package revision: <iteration>+<dist tag> for deb
// (1+deb12) and <iteration>.<dist tag> for rpm (1.el9).
func PackageRelease(p *spec.Project, t target.Target) string {
	if t.Format == target.FormatRPM {
		return fmt.Sprintf("%d.%s", p.Iteration, t.DistTag)
	}
	return fmt.Sprintf("%d+%s", p.Iteration, t.DistTag)
}

// compressor is nfpm's setting for a compression, at the level dpkg-deb
// and rpm use when none is given: zstd 3 (nfpm's own default is about
// level 7, twice as slow for a few percent), gzip 9, xz 6 (the xz
// library's preset).
func compressor(c string) string {
	switch c {
	case "zstd":
		return "zstd:3"
	case "gzip":
		return "gzip:9"
	}
	return c
}

// Compression is the project's choice for the format, else the target's.
func Compression(p *spec.Project, t target.Target) string {
	c := p.Package.Compression.Deb
	if t.Format == target.FormatRPM {
		c = p.Package.Compression.RPM
	}
	return cmp.Or(c, t.Compression)
}

// Hook finds the script for a hook: <hook>.<target>, else <hook>.<format>,
// else <hook>; "" when the project has none.
func Hook(p *spec.Project, t target.Target, hook string) string {
	for _, name := range []string{hook + "." + t.Name, hook + "." + t.Format, hook} {
		if f, ok := p.Hooks[name]; ok {
			return f
		}
	}
	return ""
}

// Info assembles nfpm's description of the package.
func Info(opts Options) (*nfpm.Info, int, error) {
	p, t := opts.Project, opts.Target
	contents, n, err := Contents(opts)
	if err != nil {
		return nil, 0, err
	}
	hook := func(name string) string {
		if f := Hook(p, t, name); f != "" {
			return filepath.Join(opts.Root, f)
		}
		return ""
	}
	preinst, err := preinstWithAccounts(p, t.Format, hook("preinst"), opts.WorkDir)
	if err != nil {
		return nil, 0, err
	}
	var predepends []string
	depends := slices.Clone(opts.Depends)
	if accountScript(p, t.Format) != "" {
		if t.Format == target.FormatRPM {
			depends = append(depends, "shadow-utils") // groupadd, useradd
		} else {
			predepends = append(predepends, "adduser") // before preinst runs
		}
	}
	depends = append(depends, p.Package.RuntimeDependencies.For(t.Format)...)
	slices.Sort(depends)
	depends = slices.Compact(depends)
	summary, long, _ := strings.Cut(p.Description, "\n")
	if strings.TrimSpace(long) == "" {
		long = extendedDescription(p, opts.Embedded)
	}
	desc := summary + "\n" + long
	info := &nfpm.Info{
		Name:        p.Name,
		Arch:        opts.Arch,
		Platform:    "linux",
		Version:     p.Version,
		Release:     PackageRelease(p, t),
		Section:     p.Package.Section,
		Priority:    "optional",
		Maintainer:  p.Maintainer,
		Description: desc,
		Vendor:      p.Vendor,
		Homepage:    p.Homepage,
		License:     p.License,
		MTime:       opts.MTime,
		// Sources are exact paths, some of them named by the build:
		// never glob them.
		DisableGlobbing: true,
		Overridables: nfpm.Overridables{
			Depends:   depends,
			Conflicts: p.Package.Conflicts,
			Replaces:  p.Package.Replaces,
			Provides:  p.Package.Provides,
			Contents:  contents,
			Umask:     0o022,
			Scripts: nfpm.Scripts{
				PreInstall:  preinst,
				PostInstall: hook("postinst"),
				PreRemove:   hook("prerm"),
				PostRemove:  hook("postrm"),
			},
			Deb: nfpm.Deb{Compression: compressor(Compression(p, t)), Predepends: predepends},
			RPM: nfpm.RPM{
				Compression: compressor(Compression(p, t)),
				Group:       rpmGroup(p.Package.Section),
				Summary:     summary,
				BuildHost:   "coach",
				Packager:    p.Maintainer,
				Scripts:     nfpm.RPMScripts{PreTrans: hook("pretrans"), PostTrans: hook("posttrans")},
			},
		},
	}
	if p.Epoch > 0 {
		info.Epoch = fmt.Sprint(p.Epoch)
	}
	if t.Format == target.FormatRPM && opts.WorkDir != "" {
		if info.Changelog, err = rpmChangelog(p, t, opts.Root, opts.MTime, opts.WorkDir); err != nil {
			return nil, 0, err
		}
	}
	return nfpm.WithDefaults(info), n, nil
}

func rpmGroup(section string) string {
	if section == "" || section == "misc" {
		return "Applications/System"
	}
	return section
}

// Contents lists the package's files: every directory, file and symlink of
// the tree (owned by root, modes kept, in a stable order), the project's
// config files marked as such, and its links. Files of the tree that are
// hard links of one another have the same Source (one stripped copy when
// they are stripped), and the writers package them as hard links.
func Contents(opts Options) (files.Contents, int, error) {
	p := opts.Project
	config := map[string]bool{}
	for _, c := range p.Package.ConfigFiles {
		config[c] = true
	}
	info := func(mode fs.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: opts.MTime}
	}
	var out files.Contents
	count := 0
	work := opts.WorkDir
	if work == "" {
		return nil, 0, fmt.Errorf("pkg: Contents needs a WorkDir for stripped and generated files")
	}
	tree, err := confine.Open(opts.Tree)
	if err != nil {
		return nil, 0, err
	}
	defer tree.Close()
	docs, err := docFiles(p, opts.Target, opts.Root, opts.Summary, copyrightNotices(tree), opts.MTime, work)
	if err != nil {
		return nil, 0, err
	}
	strippedCopies := map[fileID]string{} // one stripped copy of each inode
	err = filepath.WalkDir(opts.Tree, func(hostPath string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(opts.Tree, hostPath)
		if rel != "." && health.Matches(filepath.ToSlash(rel), p.Package.Exclude) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // left out by package.exclude
		}
		dst := path.Join(p.InstallDir, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		// Owner, group and mode from the project; a build's setuid bits
		// are never kept, only the project's own package.files grant them.
		own, err := treeAttrs(p, filepath.ToSlash(rel), fi.Mode().Perm())
		if err != nil {
			return err
		}
		treeInfo := func(mode fs.FileMode) *files.ContentFileInfo {
			if own.modeSet {
				mode = own.mode
			}
			return &files.ContentFileInfo{Owner: own.owner, Group: own.group, Mode: mode, MTime: opts.MTime}
		}
		switch {
		case d.IsDir():
			out = append(out, &files.Content{Destination: dst, Type: files.TypeDir, FileInfo: treeInfo(fi.Mode().Perm())})
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(hostPath)
			if err != nil {
				return err
			}
			lnk := treeInfo(0o777)
			lnk.Mode = 0o777
			out = append(out, &files.Content{Source: link, Destination: dst, Type: files.TypeSymlink, FileInfo: lnk})
			count++
		case fi.Mode().IsRegular():
			typ := files.TypeFile
			if config[dst] {
				typ = files.TypeConfigNoReplace
				delete(config, dst)
			}
			if opts.Expected != nil {
				got, err := confine.HashFile(tree, rel)
				if err != nil {
					return err
				}
				if want := opts.Expected[filepath.ToSlash(rel)]; got != want {
					return &CorruptFileError{Path: filepath.ToSlash(rel), Want: want, Got: got}
				}
			}
			src, mode := hostPath, fi.Mode().Perm()
			if exe, shared, machine := elfInfo(tree, rel); exe || shared {
				if p.Package.StripBinaries() {
					id, linked := inode(fi)
					if done, ok := strippedCopies[id]; linked && ok {
						src = done
					} else {
						if src, err = stripped(tree, rel, work, shared, machine); err != nil {
							return err
						}
						if linked {
							strippedCopies[id] = src
						}
					}
				}
				if shared && opts.Target.Format == target.FormatDeb && !exe {
					mode &^= 0o111 // Debian policy: shared libraries are not executable
				}
			}
			out = append(out, &files.Content{Source: src, Destination: dst, Type: typ, FileInfo: treeInfo(mode)})
			count++
		default:
			return fmt.Errorf("%s: %s cannot be packaged", dst, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(config) > 0 {
		var missing []string
		for c := range config {
			missing = append(missing, c)
		}
		slices.Sort(missing)
		return nil, 0, fmt.Errorf("config files %s are not in the built tree (they must be installed under %s by a component)", strings.Join(missing, ", "), p.InstallDir)
	}
	for _, e := range append(docs, opts.Extra...) {
		e.FileInfo = info(0o644)
		out = append(out, e)
		count++
	}
	extra, err := extraFiles(p, opts.Target, opts.Root, work, info)
	if err != nil {
		return nil, 0, err
	}
	out = append(out, extra...)
	count += len(extra)
	links := slices.Sorted(maps.Keys(p.Package.Links))
	for _, l := range links {
		out = append(out, &files.Content{Source: p.Package.Links[l], Destination: l, Type: files.TypeSymlink, FileInfo: info(0o777)})
		count++
	}
	// The package owns every directory it makes: those of the files it
	// adds beside the tree (LICENSES/SUMMARY when no component has a
	// license file) and its documentation directory. Without an entry,
	// rpm would not remove them on erase.
	dirs := map[string]bool{}
	for _, c := range out {
		if c.Type == files.TypeDir {
			dirs[c.Destination] = true
		}
	}
	doc := "/usr/share/doc/" + p.Name
	for _, c := range slices.Clone(out) {
		for d := path.Dir(c.Destination); d != "/" && d != "."; d = path.Dir(d) {
			if !strings.HasPrefix(d, p.InstallDir+"/") && d != p.InstallDir && d != doc {
				continue
			}
			if !dirs[d] {
				dirs[d] = true
				out = append(out, &files.Content{Destination: d, Type: files.TypeDir, FileInfo: info(0o755)})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *files.Content) int { return strings.Compare(a.Destination, b.Destination) })
	return out, count, nil
}

// packager returns nfpm's packager for a format.
func packager(format string) (nfpm.Packager, error) {
	switch format {
	case target.FormatDeb:
		return deb.Default, nil
	case target.FormatRPM:
		return rpm.DefaultRPM, nil
	}
	return nil, fmt.Errorf("no packager for format %q", format)
}

// FileName is the package's file name by the distribution's conventions.
func FileName(info *nfpm.Info, format string) (string, error) {
	pk, err := packager(format)
	if err != nil {
		return "", err
	}
	return pk.ConventionalFileName(info), nil
}

// Package writes the package into OutDir, through a temporary file renamed
// into place, so a failure never leaves a partial package behind.
func Package(opts Options) (*Artifact, error) {
	t := opts.Target
	if opts.WorkDir == "" {
		// Stripped copies and generated files must outlive Info: nfpm
		// reads them while it writes the package.
		work, err := os.MkdirTemp("", "coach-pkg-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
		opts.WorkDir = work
	}
	info, n, err := Info(opts)
	if err != nil {
		return nil, fmt.Errorf("package %s for %s: %w", opts.Project.Name, t.Name, err)
	}
	if err := checkPaths(info.Contents, t.Format); err != nil {
		return nil, fmt.Errorf("package %s for %s: %w", opts.Project.Name, t.Name, err)
	}
	pk, err := packager(t.Format)
	if err != nil {
		return nil, err
	}
	name := pk.ConventionalFileName(info)
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(opts.OutDir, "."+name+".partial-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	signer := opts.Signer
	if signer == nil && opts.SignKey != "" {
		if signer, err = LoadSigner(opts.SignKey, os.Getenv(opts.SignPassphraseEnv)); err != nil {
			return nil, err
		}
	}
	var write func(*nfpm.Info, io.Writer) error
	switch t.Format {
	case target.FormatDeb:
		write = func(info *nfpm.Info, w io.Writer) error { return writeDeb(info, opts.WorkDir, signer, w) }
	case target.FormatRPM:
		write = func(info *nfpm.Info, w io.Writer) error { return writeRPM(info, opts.WorkDir, signer, w) }
	}
	// The writers copy their payload file into tmp directly (the kernel
	// copies file to file); the digest is taken from the written file.
	if err := write(info, tmp); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("package %s for %s: %w", opts.Project.Name, t.Name, err)
	}
	h := sha256.New()
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return nil, err
	}
	size, err := io.Copy(h, tmp)
	if err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	final := filepath.Join(opts.OutDir, name)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return nil, err
	}
	return &Artifact{
		Target: t.Name, Format: t.Format, File: name, Path: final, Name: info.Name,
		Version: opts.Project.Version, Release: info.Release, Arch: FormatArch(t.Format, opts.Arch),
		SHA256: hex.EncodeToString(h.Sum(nil)), Size: size, Files: n,
		Signed: signer != nil, Compress: Compression(opts.Project, t),
	}, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// FormatArch is the format's name for a Go architecture: amd64 and arm64
// for deb, x86_64 and aarch64 for rpm (target.PackageArch).
func FormatArch(format, goarch string) string { return target.PackageArch(format, goarch) }
