package pkg

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2/files"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/internal/proc"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Names of the files written beside the packages.
const (
	ManifestFile = "version-manifest.json"
	SumsFile     = "SHA256SUMS"
	ReportFile   = "build-report.json"
)

// SBOMFile is the SPDX document's name for a project build.
func SBOMFile(p *spec.Project) string { return p.Name + "-" + BuildVersion(p) + ".spdx.json" }

// DefaultEpoch is the package time when neither SOURCE_DATE_EPOCH nor the
// lock file gives one.
var DefaultEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// SourceDateEpoch is $SOURCE_DATE_EPOCH, else the lock file's
// source_date_epoch, else DefaultEpoch; and where it came from.
func SourceDateEpoch(lock *resolve.Lock) (time.Time, string, error) {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
		}
		return time.Unix(n, 0).UTC(), "SOURCE_DATE_EPOCH", nil
	}
	if lock != nil && lock.SourceDateEpoch > 0 {
		return time.Unix(lock.SourceDateEpoch, 0).UTC(), "lock file", nil
	}
	return DefaultEpoch, "default", nil
}

// TargetTree is one target's built tree and what the health check derived.
type TargetTree struct {
	Target  target.Target
	Tree    string // host dir of the install dir's contents
	Depends []string
	// TreeDigest identifies the tree's content (a digest of its layers'
	// digests); with it, a package made from the same inputs before is
	// taken from the previous release instead of being made again.
	TreeDigest string
	// Arch is the tree's Go architecture; empty means the release's.
	Arch string
	// Files, when set, gives what each regular file of the tree must hash
	// to (its layer's manifest): packaging reads every byte anyway, and
	// checks them, so that a layer corrupted in the cache never reaches a
	// package. It is called only when a package is made.
	Files func() (map[string]string, error)
}

// slot names what a release holds one package of: a target and an
// architecture (the format's name for it, as artifacts carry it).
func slot(target, arch string) string { return target + "/" + arch }

// Release is what a build writes into the output directory.
type Release struct {
	OutDir    string      `json:"out_dir"`
	Artifacts []*Artifact `json:"packages"`
	Manifest  string      `json:"manifest"`
	SBOM      string      `json:"sbom"`
	CycloneDX string      `json:"cyclonedx"`
	Sums      string      `json:"sha256sums"`
	Report    string      `json:"report"`
	MTime     time.Time   `json:"source_date_epoch"`
}

// ReleaseOptions say what to write.
type ReleaseOptions struct {
	Project    *spec.Project
	Root       string
	Resolution *resolve.Resolution
	Trees      []TargetTree
	Arch       string
	OutDir     string
	MTime      time.Time
	SignKey    string
	PassEnv    string
	// Report is written as build-report.json, with the release added.
	Report map[string]any
	// Lock gives the package time when MTime is zero (SourceDateEpoch).
	Lock *resolve.Lock
	// Log hears each package written or reused, and a package time that
	// is only the default.
	Log *slog.Logger
}

// ReleaseDir is where a release of the project goes under a base output
// directory: one directory per project, version and iteration, so that
// SHA256SUMS, the manifest and the SBOM list exactly the packages beside
// them, and packages of other releases are never mixed in.
func ReleaseDir(base string, p *spec.Project) string {
	return filepath.Join(base, p.Name+"-"+BuildVersion(p))
}

// WriteRelease packages every target into a staging directory and puts it
// in place as ReleaseDir(OutDir) only when every file was written,
// replacing that release's previous directory whole: a failed build leaves
// the previous good artifacts as they were, and a good one leaves nothing
// of the previous build of the same release beside its own files.
//
// An empty OutDir is Root/pkg, an empty PassEnv COACH_SIGNING_PASSPHRASE.
func WriteRelease(o ReleaseOptions) (*Release, error) {
	if o.MTime.IsZero() {
		mtime, from, err := SourceDateEpoch(o.Lock)
		if err != nil {
			return nil, failure.Request(err)
		}
		if from == "default" && o.Log != nil {
			o.Log.Warn("no SOURCE_DATE_EPOCH and no lock file: package times default to 2020-01-01 (run coach lock)", "project", o.Project.Name)
		}
		o.MTime = mtime
	}
	o.OutDir = cmp.Or(o.OutDir, filepath.Join(o.Root, "pkg"))
	o.PassEnv = cmp.Or(o.PassEnv, "COACH_SIGNING_PASSPHRASE")
	rel, err := writeRelease(o)
	if err != nil || o.Log == nil {
		return rel, err
	}
	for _, p := range rel.Artifacts {
		switch {
		case p.Reused:
			o.Log.Info("package unchanged (same tree, definition and target)", "target", p.Target, "file", p.File, "sha256", p.SHA256)
		case !p.Kept:
			o.Log.Info("packaged", "target", p.Target, "file", p.File, "bytes", p.Size, "sha256", p.SHA256)
		}
	}
	return rel, nil
}

func writeRelease(o ReleaseOptions) (*Release, error) {
	var signer *Signer
	if o.SignKey != "" {
		// The key is read and unlocked once, before anything is written:
		// a wrong passphrase fails the release at once.
		var err error
		if signer, err = LoadSigner(o.SignKey, os.Getenv(o.PassEnv)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	final := ReleaseDir(o.OutDir, o.Project)
	SweepStaging(o.OutDir)
	staging, err := os.MkdirTemp(o.OutDir, fmt.Sprintf(".staging-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	scratch := filepath.Join(staging, ".scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return nil, err
	}
	comps := o.Resolution.Components
	summary := filepath.Join(scratch, "license-summary")
	if err := os.WriteFile(summary, LicenseSummary(o.Project, comps), 0o644); err != nil {
		return nil, err
	}
	rel := &Release{OutDir: final, MTime: o.MTime}
	sums := map[string]string{}
	var embedded []string
	for _, c := range comps {
		embedded = append(embedded, c.Name+" "+c.Version)
	}
	summaryText := LicenseSummary(o.Project, comps)
	old := previousRelease(final)
	previous := byTarget(old)
	for i, t := range o.Trees {
		arch := cmp.Or(t.Arch, o.Arch)
		t.Arch = arch
		key := inputKey(o, t, summaryText, embedded)
		if a := reuse(final, staging, previous, slot(t.Target.Name, FormatArch(t.Target.Format, arch)), key); a != nil {
			rel.Artifacts = append(rel.Artifacts, a)
			sums[a.File] = a.SHA256
			continue
		}
		work := filepath.Join(scratch, fmt.Sprintf("work-%d", i))
		if err := os.MkdirAll(work, 0o755); err != nil {
			return nil, err
		}
		var expected map[string]string
		if t.Files != nil {
			if expected, err = t.Files(); err != nil {
				return nil, err
			}
		}
		a, err := Package(Options{
			Project: o.Project, Root: o.Root, Target: t.Target, Arch: arch, Tree: t.Tree, Depends: t.Depends, Expected: expected,
			MTime: o.MTime, OutDir: staging, Signer: signer,
			Summary: summaryText, Embedded: embedded, WorkDir: work,
			Extra: files.Contents{{Source: summary, Destination: path.Join(o.Project.InstallDir, "LICENSES", "SUMMARY"), Type: files.TypeFile}},
		})
		if err != nil {
			return nil, err
		}
		a.InputKey = key
		rel.Artifacts = append(rel.Artifacts, a)
		sums[a.File] = a.SHA256
	}
	write := func(name string, data []byte) error {
		sums[name] = strings.TrimPrefix(digest.Bytes(data), digest.Prefix)
		return os.WriteFile(filepath.Join(staging, name), data, 0o644)
	}
	manifest := VersionManifest(o.Project, comps)
	kept, err := keepOtherTargets(final, staging, manifest, old, rel.Artifacts)
	if err != nil {
		return nil, err
	}
	for _, a := range kept {
		rel.Artifacts = append(rel.Artifacts, a)
		sums[a.File] = a.SHA256
	}
	if err := write(ManifestFile, manifest); err != nil {
		return nil, err
	}
	sbom, err := SBOM(o.Project, comps, rel.Artifacts, o.MTime)
	if err != nil {
		return nil, fmt.Errorf("SBOM: %w", err)
	}
	if err := write(SBOMFile(o.Project), sbom); err != nil {
		return nil, err
	}
	bom, err := CycloneDX(o.Project, comps, rel.Artifacts, o.MTime)
	if err != nil {
		return nil, fmt.Errorf("CycloneDX SBOM: %w", err)
	}
	if err := write(CycloneDXFile(o.Project), bom); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(staging, SumsFile), SHA256SUMS(sums), 0o644); err != nil {
		return nil, err
	}
	names := []string{ManifestFile, SBOMFile(o.Project), CycloneDXFile(o.Project), SumsFile}
	for _, a := range rel.Artifacts {
		names = append(names, a.File)
	}
	rel.Manifest, rel.SBOM, rel.Sums, rel.Report = filepath.Join(final, ManifestFile), filepath.Join(final, SBOMFile(o.Project)), filepath.Join(final, SumsFile), filepath.Join(final, ReportFile)
	rel.CycloneDX = filepath.Join(final, CycloneDXFile(o.Project))
	for _, a := range rel.Artifacts {
		a.Path = filepath.Join(final, a.File)
	}
	report := o.Report
	if report == nil {
		report = map[string]any{}
	}
	report["release"] = rel
	data, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(filepath.Join(staging, ReportFile), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(scratch); err != nil {
		return nil, err
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return nil, err
	}
	// Every file is complete and on disk: the staging directory becomes
	// the release, and the exchange is on disk before coach goes on.
	if err := durable.Sync(staging); err != nil {
		return nil, err
	}
	if err := replaceDir(staging, final); err != nil {
		return nil, fmt.Errorf("put the release in %s: %w", final, err)
	}
	if err := durable.SyncDir(o.OutDir); err != nil {
		return nil, err
	}
	return rel, nil
}

// keepOtherTargets links into staging the packages that the release's
// previous directory holds for targets this build does not write, when that
// build packaged exactly the same components (its version manifest is the
// same bytes) and each package still has the checksum it was listed with.
// So `coach build -t debian-12` then `coach package -t el9 --from debian-12`
// leave both packages, listed in one SHA256SUMS, while a package of
// different components is never listed beside this build's.
func keepOtherTargets(prev, staging string, manifest []byte, report *Release, written []*Artifact) ([]*Artifact, error) {
	old, err := os.ReadFile(filepath.Join(prev, ManifestFile))
	if err != nil || string(old) != string(manifest) || report == nil {
		return nil, nil
	}
	targets := map[string]bool{}
	for _, a := range written {
		targets[slot(a.Target, a.Arch)] = true
	}
	var out []*Artifact
	for _, a := range report.Artifacts {
		if a == nil || targets[slot(a.Target, a.Arch)] || a.File != filepath.Base(a.File) || a.File == "" {
			continue
		}
		if ok, err := linkUnchanged(prev, staging, a); err != nil {
			return nil, fmt.Errorf("keep %s: %w", a.File, err)
		} else if !ok {
			continue
		}
		a.Kept = true
		targets[slot(a.Target, a.Arch)] = true
		out = append(out, a)
	}
	return out, nil
}

// stagingName matches a release's staging directory and the process that
// made it.
var stagingName = regexp.MustCompile(`^\.staging-([0-9]+)-[0-9]+$`)

// SweepStaging removes the staging directories of killed runs from an
// output directory: each is named after the process that made it, and one
// whose process is gone is no one's.
func SweepStaging(outDir string) {
	for _, e := range proc.Leftovers(outDir, stagingName) {
		if e.IsDir() {
			os.RemoveAll(filepath.Join(outDir, e.Name()))
		}
	}
}
