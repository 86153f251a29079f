package main

import (
	"context"
	"fmt"
	"os"
	"path"

	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/scaffold"
)

// readArchive downloads the release archive at url (the source mirrors
// first, a mirror template expanded), checks it against want when given,
// and reads it. It returns what it found and the archive's sha256.
func (a *app) readArchive(ctx context.Context, url, want string, mirrors []string, name, version string) (*scaffold.Source, string, error) {
	ms, err := fetch.Mirrors(mirrors)
	if err != nil {
		return nil, "", usageError(err)
	}
	f, err := os.CreateTemp("", "coach-new-*")
	if err != nil {
		return nil, "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	sum, size, from, err := fetch.DownloadFrom(ctx, url, ms, f)
	if err != nil {
		return nil, "", err
	}
	if want != "" && sum != want {
		return nil, "", &mismatchError{failure.Stage("fetch", fmt.Errorf("%s has sha256 %s, not the %s --sha256 gives", from, sum, want))}
	}
	a.log.Info("downloaded once to pin and read it", "url", from, "bytes", size, "sha256", sum)
	src, err := scaffold.Inspect(f.Name(), path.Base(from), name, version)
	if err != nil {
		return nil, "", failure.Stage("fetch", err)
	}
	return src, sum, nil
}

func scaffoldSoftware(name, version, url, sum, license string, src *scaffold.Source) string {
	return scaffold.Definition(schemaDir, scaffold.Pin{Name: name, Version: version, URL: url, SHA256: sum, License: license}, src)
}

// yamlString is s as a YAML scalar (a URL that is a mirror template is
// quoted).
func yamlString(s string) string {
	if s == "" {
		return ""
	}
	return scaffold.YAMLString(s)
}

// mismatchError: the archive was downloaded and is not the one --sha256
// pins.
type mismatchError struct{ error }

func (e *mismatchError) Unwrap() error { return e.error }
