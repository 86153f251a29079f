package pkg

import (
	"net/url"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/target"
)

// ComponentPURL is a component's package URL, so that scanners can match
// it: the upstream's own type where its source says which one (a GitHub
// repository or release, PyPI, npm, crates.io), else pkg:generic with the
// download URL (or VCS URL) and the source's checksum.
func ComponentPURL(c resolve.Component) packageurl.PackageURL {
	s := c.Source
	var q packageurl.Qualifiers
	if s.Git != "" {
		if owner, repo, ok := githubRepo(s.Git); ok {
			return *packageurl.NewPackageURL(packageurl.TypeGithub, owner, repo, s.Commit, nil, "")
		}
		q = append(q, packageurl.Qualifier{Key: "vcs_url", Value: "git+" + s.Git + "@" + s.Commit})
		return *packageurl.NewPackageURL(packageurl.TypeGeneric, "", c.Name, c.Version, q, "")
	}
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err == nil {
			if p, ok := upstreamPURL(c, u); ok {
				return p
			}
		}
		q = append(q, packageurl.Qualifier{Key: "download_url", Value: s.URL})
	}
	switch {
	case s.SHA256 != "":
		q = append(q, packageurl.Qualifier{Key: "checksum", Value: "sha256:" + s.SHA256})
	case s.SHA512 != "":
		q = append(q, packageurl.Qualifier{Key: "checksum", Value: "sha512:" + s.SHA512})
	}
	return *packageurl.NewPackageURL(packageurl.TypeGeneric, "", c.Name, c.Version, q, "")
}

// githubRepo reads owner and repository from a github.com URL.
func githubRepo(raw string) (owner, repo string, ok bool) {
	u, err := url.Parse(strings.TrimPrefix(raw, "git+"))
	if err != nil || !strings.EqualFold(u.Host, "github.com") {
		return "", "", false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return strings.ToLower(parts[0]), strings.TrimSuffix(parts[1], ".git"), true
}

// upstreamPURL recognises a download from a registry or forge whose purl
// type identifies the release exactly.
func upstreamPURL(c resolve.Component, u *url.URL) (packageurl.PackageURL, bool) {
	host := strings.ToLower(u.Host)
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch {
	case host == "github.com" && len(parts) >= 4 && (parts[2] == "releases" || parts[2] == "archive"):
		// github.com/<owner>/<repo>/releases/download/<tag>/... or /archive/...
		return *packageurl.NewPackageURL(packageurl.TypeGithub, strings.ToLower(parts[0]), parts[1], c.Version, nil, ""), true
	case host == "files.pythonhosted.org" || host == "pypi.org" || host == "pypi.python.org":
		name := strings.ToLower(strings.ReplaceAll(c.Name, "_", "-"))
		return *packageurl.NewPackageURL(packageurl.TypePyPi, "", name, c.Version, nil, ""), true
	case host == "registry.npmjs.org" && len(parts) >= 3 && parts[len(parts)-2] == "-":
		ns, name := "", parts[0]
		if strings.HasPrefix(name, "@") && len(parts) >= 4 {
			ns, name = name, parts[1]
		}
		return *packageurl.NewPackageURL(packageurl.TypeNPM, ns, name, c.Version, nil, ""), true
	case host == "crates.io" || host == "static.crates.io":
		return *packageurl.NewPackageURL(packageurl.TypeCargo, "", c.Name, c.Version, nil, ""), true
	}
	return packageurl.PackageURL{}, false
}

// ArtifactPURL is a written package's package URL: pkg:deb or pkg:rpm
// with the vendor (or project) as namespace, the full version, the
// architecture and the distribution.
func ArtifactPURL(a *Artifact, vendor string) packageurl.PackageURL {
	ns := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(vendor), " ", "-"))
	if ns == "" {
		ns = a.Name
	}
	typ := packageurl.TypeDebian
	if a.Format == target.FormatRPM {
		typ = packageurl.TypeRPM
	}
	deb, rpm := Versions(a.Version)
	version := deb + "-" + a.Release
	if a.Format == target.FormatRPM {
		version = rpm + "-" + a.Release
	}
	q := packageurl.Qualifiers{{Key: "arch", Value: a.Arch}, {Key: "distro", Value: a.Target}}
	return *packageurl.NewPackageURL(typ, ns, a.Name, version, q, "")
}
