package pkg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
)

// Manifest is Omnibus's version-manifest.json, in the shape its users'
// tools read: the build version, and per software its locked version and
// source.
type Manifest struct {
	ManifestFormat int                         `json:"manifest_format"`
	BuildVersion   string                      `json:"build_version"`
	License        string                      `json:"license"`
	Software       map[string]ManifestSoftware `json:"software"`
}

// ManifestSoftware is one component in the manifest.
type ManifestSoftware struct {
	LockedVersion    string         `json:"locked_version"`
	LockedSource     map[string]any `json:"locked_source"`
	SourceType       string         `json:"source_type"`
	DescribedVersion string         `json:"described_version"`
	License          string         `json:"license"`
	Definition       string         `json:"definition"`
}

// BuildVersion is the package version with its revision, as installed.
func BuildVersion(p *spec.Project) string {
	return fmt.Sprintf("%s-%d", p.Version, p.Iteration)
}

func sourceMap(s resolve.Source) map[string]any {
	m := map[string]any{}
	switch {
	case s.URL != "":
		m["url"] = s.URL
		if s.SHA256 != "" {
			m["sha256"] = s.SHA256
		}
		if s.SHA512 != "" {
			m["sha512"] = s.SHA512
		}
	case s.Git != "":
		m["git"] = s.Git
		m["commit"] = s.Commit
		if s.Tag != "" {
			m["tag"] = s.Tag
		}
	default:
		m["path"] = "software/" + s.Path
		m["tree"] = s.Tree
	}
	return m
}

// VersionManifest renders version-manifest.json.
func VersionManifest(p *spec.Project, comps []resolve.Component) []byte {
	m := Manifest{ManifestFormat: 2, BuildVersion: BuildVersion(p), License: p.License, Software: map[string]ManifestSoftware{}}
	for _, c := range comps {
		m.Software[c.Name] = ManifestSoftware{
			LockedVersion: c.Version, LockedSource: sourceMap(c.Source), SourceType: c.Source.Kind(),
			DescribedVersion: c.Version, License: c.License, Definition: c.Definition,
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// LicenseSummary is the text installed as <install_dir>/LICENSES/SUMMARY:
// every component, its version and license, and where its license texts
// are.
func LicenseSummary(p *spec.Project, comps []resolve.Component) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s is licensed under %s.\n\nIt contains:\n\n", p.Name, BuildVersion(p), p.License)
	for _, c := range comps {
		fmt.Fprintf(&b, "%s %s\n    license: %s\n", c.Name, c.Version, c.License)
		if c.Software != nil && len(c.Software.LicenseFiles) > 0 {
			fmt.Fprintf(&b, "    texts: %s/LICENSES/%s/\n", p.InstallDir, c.Name)
		}
		fmt.Fprintf(&b, "    source: %s\n", describeSource(c.Source))
	}
	return b.Bytes()
}

func describeSource(s resolve.Source) string {
	switch {
	case s.URL != "":
		// A file of a package archive (mirror://debian/pool/...) is
		// named by the archive and its path there: the host is the
		// builder's mirror, not a place a reader can use.
		if name, rest, ok := mirror.Ref(s.URL); ok {
			return fmt.Sprintf("%s in the %s archive (sha256 %s)", strings.TrimPrefix(rest, "/"), archiveName(name), s.SHA256)
		}
		return s.URL
	case s.Git != "":
		return s.Git + " @ " + s.Commit
	}
	return "software/" + s.Path + " in the project's repository"
}

// archiveName is how a reader knows a package archive.
func archiveName(name string) string {
	switch name {
	case "debian":
		return "Debian"
	case "ubuntu":
		return "Ubuntu"
	}
	return name
}

var spdxIDChars = regexp.MustCompile(`[^A-Za-z0-9.-]`)

func spdxID(s string) common.ElementID { return common.ElementID(spdxIDChars.ReplaceAllString(s, "-")) }

// SBOM renders an SPDX 2.3 JSON document: the project's package, which
// contains a package per component with its source, checksum and license,
// and the files written for each target.
func SBOM(p *spec.Project, comps []resolve.Component, artifacts []*Artifact, created time.Time) ([]byte, error) {
	root := spdxID("Package-" + p.Name)
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      p.Name + "-" + BuildVersion(p),
		DocumentNamespace: fmt.Sprintf("https://spdx.invalid/coach/%s-%s-%s", p.Name, BuildVersion(p), strings.TrimPrefix(digest.JSON(comps), "sha256:")[:16]),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "coach"}},
			Created:  created.UTC().Format(time.RFC3339),
		},
	}
	top := &spdx.Package{
		PackageName: p.Name, PackageSPDXIdentifier: root, PackageVersion: BuildVersion(p),
		PackageDownloadLocation: "NOASSERTION", PackageLicenseDeclared: licenseOrNone(p.License),
		PackageLicenseConcluded: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
		PackageSupplier: supplier(p.Maintainer), PackageHomePage: p.Homepage, PrimaryPackagePurpose: "APPLICATION",
	}
	for _, a := range artifacts {
		top.PackageComment += fmt.Sprintf("%s: %s sha256:%s\n", a.Target, a.File, a.SHA256)
		purl := ArtifactPURL(a, p.Vendor)
		top.PackageExternalReferences = append(top.PackageExternalReferences, &spdx.PackageExternalReference{
			Category: "PACKAGE-MANAGER", RefType: "purl", Locator: purl.ToString()})
	}
	doc.Packages = append(doc.Packages, top)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(root)), Relationship: "DESCRIBES"})
	for _, c := range comps {
		id := spdxID("Package-" + p.Name + "-" + c.Name)
		pk := &spdx.Package{
			PackageName: c.Name, PackageSPDXIdentifier: id, PackageVersion: c.Version,
			PackageDownloadLocation: downloadLocation(c.Source), PackageLicenseDeclared: licenseOrNone(c.License),
			PackageLicenseConcluded: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
			PackageSupplier: &common.Supplier{Supplier: "NOASSERTION"}, PrimaryPackagePurpose: "LIBRARY",
		}
		if c.Software != nil {
			pk.PackageHomePage = c.Software.Homepage
			pk.PackageSummary = c.Software.Description
		}
		purl := ComponentPURL(c)
		pk.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: purl.ToString()}}
		if c.Source.SHA256 != "" {
			pk.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: c.Source.SHA256}}
		} else if c.Source.SHA512 != "" {
			pk.PackageChecksums = []common.Checksum{{Algorithm: common.SHA512, Value: c.Source.SHA512}}
		}
		doc.Packages = append(doc.Packages, pk)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(root)), RefB: common.MakeDocElementID("", string(id)), Relationship: "CONTAINS"})
		for _, d := range c.Dependencies {
			doc.Relationships = append(doc.Relationships, &spdx.Relationship{
				RefA: common.MakeDocElementID("", string(id)), RefB: common.MakeDocElementID("", string(spdxID("Package-"+p.Name+"-"+d))), Relationship: "DEPENDS_ON"})
		}
	}
	var b bytes.Buffer
	if err := spdxjson.Write(doc, &b, spdxjson.Indent("  ")); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func licenseOrNone(l string) string {
	if l == "" {
		return "NOASSERTION"
	}
	return l
}

func supplier(maintainer string) *common.Supplier {
	if maintainer == "" {
		return &common.Supplier{Supplier: "NOASSERTION"}
	}
	return &common.Supplier{Supplier: maintainer, SupplierType: "Organization"}
}

func downloadLocation(s resolve.Source) string {
	switch {
	case s.URL != "":
		return s.URL
	case s.Git != "":
		return "git+" + s.Git + "@" + s.Commit
	}
	return "NOASSERTION"
}

// SHA256SUMS renders sha256sum's format for the named files.
func SHA256SUMS(sums map[string]string) []byte {
	var b bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		fmt.Fprintf(&b, "%s  %s\n", sums[name], name)
	}
	return b.Bytes()
}
