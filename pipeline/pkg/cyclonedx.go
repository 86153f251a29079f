package pkg

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
)

// CycloneDXFile is the CycloneDX document's name for a project build.
func CycloneDXFile(p *spec.Project) string { return p.Name + "-" + BuildVersion(p) + ".cdx.json" }

// CycloneDX renders a CycloneDX 1.6 JSON document beside the SPDX one:
// the project as the application the BOM describes (with a purl per
// package written), each component with its purl, license, source
// checksum and download location, and the dependency graph.
func CycloneDX(p *spec.Project, comps []resolve.Component, artifacts []*Artifact, created time.Time) ([]byte, error) {
	ref := func(name string) string { return "component:" + name }
	top := &cdx.Component{
		BOMRef: "project:" + p.Name, Type: cdx.ComponentTypeApplication, Name: p.Name, Version: BuildVersion(p),
		Description: strings.SplitN(p.Description, "\n", 2)[0], Licenses: licenses(p.License),
	}
	if p.Vendor != "" || p.Maintainer != "" {
		top.Supplier = &cdx.OrganizationalEntity{Name: cmpOr(p.Vendor, p.Maintainer)}
	}
	if p.Homepage != "" {
		top.ExternalReferences = &[]cdx.ExternalReference{{Type: cdx.ERTypeWebsite, URL: p.Homepage}}
	}
	var dists []cdx.Component
	for _, a := range artifacts {
		purl := ArtifactPURL(a, p.Vendor)
		dists = append(dists, cdx.Component{
			BOMRef: "package:" + a.File, Type: cdx.ComponentTypeApplication, Name: a.Name, Version: purl.Version,
			PackageURL: purl.ToString(), Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: a.SHA256}},
			Properties: &[]cdx.Property{{Name: "coach:target", Value: a.Target}, {Name: "coach:file", Value: a.File}},
		})
	}
	if len(dists) > 0 {
		top.Components = &dists
	}
	var components []cdx.Component
	var deps []cdx.Dependency
	direct := []string{}
	for _, c := range comps {
		purl := ComponentPURL(c)
		comp := cdx.Component{
			BOMRef: ref(c.Name), Type: cdx.ComponentTypeLibrary, Name: c.Name, Version: c.Version,
			PackageURL: purl.ToString(), Licenses: licenses(c.License),
		}
		if c.Software != nil && c.Software.Description != "" {
			comp.Description = c.Software.Description
		}
		var hashes []cdx.Hash
		switch {
		case c.Source.SHA256 != "":
			hashes = append(hashes, cdx.Hash{Algorithm: cdx.HashAlgoSHA256, Value: c.Source.SHA256})
		case c.Source.SHA512 != "":
			hashes = append(hashes, cdx.Hash{Algorithm: cdx.HashAlgoSHA512, Value: c.Source.SHA512})
		}
		if len(hashes) > 0 {
			comp.Hashes = &hashes
		}
		var refs []cdx.ExternalReference
		switch {
		case c.Source.URL != "":
			refs = append(refs, cdx.ExternalReference{Type: cdx.ERTypeDistribution, URL: c.Source.URL})
		case c.Source.Git != "":
			refs = append(refs, cdx.ExternalReference{Type: cdx.ERTypeVCS, URL: c.Source.Git, Comment: "commit " + c.Source.Commit})
		}
		if c.Software != nil && c.Software.Homepage != "" {
			refs = append(refs, cdx.ExternalReference{Type: cdx.ERTypeWebsite, URL: c.Software.Homepage})
		}
		if len(refs) > 0 {
			comp.ExternalReferences = &refs
		}
		components = append(components, comp)
		on := make([]string, 0, len(c.Dependencies))
		for _, d := range c.Dependencies {
			on = append(on, ref(d))
		}
		deps = append(deps, cdx.Dependency{Ref: ref(c.Name), Dependencies: &on})
		direct = append(direct, ref(c.Name))
	}
	deps = append([]cdx.Dependency{{Ref: top.BOMRef, Dependencies: &direct}}, deps...)
	bom := cdx.NewBOM()
	bom.SpecVersion = cdx.SpecVersion1_6
	// A serial number that is the same for the same release, so that the
	// document is reproducible.
	serial := strings.TrimPrefix(digest.JSON([]any{p.Name, BuildVersion(p), comps}), "sha256:")
	bom.SerialNumber = fmt.Sprintf("urn:uuid:%s-%s-5%s-8%s-%s", serial[0:8], serial[8:12], serial[13:16], serial[17:20], serial[20:32])
	bom.Metadata = &cdx.Metadata{
		Timestamp: created.UTC().Format(time.RFC3339),
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: "coach"}}},
		Component: top,
	}
	bom.Components = &components
	bom.Dependencies = &deps
	var b bytes.Buffer
	enc := cdx.NewBOMEncoder(&b, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.Encode(bom); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// licenses is a license as CycloneDX takes it: an SPDX expression.
func licenses(l string) *cdx.Licenses {
	if l == "" {
		return nil
	}
	return &cdx.Licenses{{Expression: l}}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
