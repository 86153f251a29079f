package pkg

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2/files"

	"github.com/coach-build/coach/pipeline/digest"
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
}

// Release is what a build writes into the output directory.
type Release struct {
	OutDir    string      `json:"out_dir"`
	Artifacts []*Artifact `json:"packages"`
	Manifest  string      `json:"manifest"`
	SBOM      string      `json:"sbom"`
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
}

// WriteRelease packages every target into a staging directory and moves
// the packages, manifest, SBOM, SHA256SUMS and report into OutDir only when
// all of them were written: a failed build leaves the previous good
// artifacts as they were.
func WriteRelease(o ReleaseOptions) (*Release, error) {
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(o.OutDir, ".staging-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	comps := o.Resolution.Components
	summary := filepath.Join(staging, ".license-summary")
	if err := os.WriteFile(summary, LicenseSummary(o.Project, comps), 0o644); err != nil {
		return nil, err
	}
	rel := &Release{OutDir: o.OutDir, MTime: o.MTime}
	sums := map[string]string{}
	var embedded []string
	for _, c := range comps {
		embedded = append(embedded, c.Name+" "+c.Version)
	}
	summaryText := LicenseSummary(o.Project, comps)
	for i, t := range o.Trees {
		work := filepath.Join(staging, fmt.Sprintf(".work-%d", i))
		if err := os.MkdirAll(work, 0o755); err != nil {
			return nil, err
		}
		a, err := Package(Options{
			Project: o.Project, Root: o.Root, Target: t.Target, Arch: o.Arch, Tree: t.Tree, Depends: t.Depends,
			MTime: o.MTime, OutDir: staging, SignKey: o.SignKey, SignPassphraseEnv: o.PassEnv,
			Summary: summaryText, Embedded: embedded, WorkDir: work,
			Extra: files.Contents{{Source: summary, Destination: path.Join(o.Project.InstallDir, "LICENSES", "SUMMARY"), Type: files.TypeFile}},
		})
		if err != nil {
			return nil, err
		}
		rel.Artifacts = append(rel.Artifacts, a)
		sums[a.File] = a.SHA256
	}
	write := func(name string, data []byte) error {
		sums[name] = strings.TrimPrefix(digest.Bytes(data), digest.Prefix)
		return os.WriteFile(filepath.Join(staging, name), data, 0o644)
	}
	if err := write(ManifestFile, VersionManifest(o.Project, comps)); err != nil {
		return nil, err
	}
	sbom, err := SBOM(o.Project, comps, rel.Artifacts, o.MTime)
	if err != nil {
		return nil, fmt.Errorf("SBOM: %w", err)
	}
	if err := write(SBOMFile(o.Project), sbom); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(staging, SumsFile), SHA256SUMS(sums), 0o644); err != nil {
		return nil, err
	}
	names := []string{ManifestFile, SBOMFile(o.Project), SumsFile}
	for _, a := range rel.Artifacts {
		names = append(names, a.File)
	}
	rel.Manifest, rel.SBOM, rel.Sums, rel.Report = filepath.Join(o.OutDir, ManifestFile), filepath.Join(o.OutDir, SBOMFile(o.Project)), filepath.Join(o.OutDir, SumsFile), filepath.Join(o.OutDir, ReportFile)
	for _, a := range rel.Artifacts {
		a.Path = filepath.Join(o.OutDir, a.File)
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
	names = append(names, ReportFile)
	// Every file is complete: move them into place, each rename atomic.
	for _, n := range names {
		if err := os.Rename(filepath.Join(staging, n), filepath.Join(o.OutDir, n)); err != nil {
			return nil, err
		}
	}
	return rel, nil
}
