//go:build ignore

// Crosscheck type-checks a package and everything it imports, from source,
// for other platforms: .ci/run's check that coach still builds for macOS
// and Windows laptops.
//
//	go run .ci/crosscheck.go ./cmd/coach darwin/arm64 windows/amd64
//
// go list (with GOOS, GOARCH and CGO_ENABLED=0, as a cross build has)
// picks each package's files for the platform, in dependency order; go/types
// checks them. That is the compiler's front end: the same build
// constraints, the same errors (an identifier that one OS's files lack, a
// mismatched signature), without generating code for a thousand packages,
// which took two cross builds 150 CPU-seconds from an empty build cache
// (this check takes a fraction of that). Linking is not checked; .ci/release
// links every platform.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type listed struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	ImportMap  map[string]string
	Module     *struct{ GoVersion string }
	Error      *struct{ Err string }
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: go run .ci/crosscheck.go PACKAGE GOOS/GOARCH...")
		os.Exit(2)
	}
	failed := false
	for _, platform := range os.Args[2:] {
		start := time.Now()
		n, err := check(os.Args[1], platform)
		if err != nil {
			fmt.Fprintf(os.Stderr, "crosscheck: %s for %s:\n%v\n", os.Args[1], platform, err)
			failed = true
			continue
		}
		fmt.Printf("crosscheck: %s type-checks for %s (%d packages, %.1fs)\n", os.Args[1], platform, n, time.Since(start).Seconds())
	}
	if failed {
		os.Exit(1)
	}
}

func check(pattern, platform string) (int, error) {
	goos, goarch, ok := strings.Cut(platform, "/")
	if !ok {
		return 0, fmt.Errorf("%q is not GOOS/GOARCH", platform)
	}
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Dir,Standard,GoFiles,ImportMap,Module,Error", "--", pattern)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("go list: %v\n%s", err, stderr.String())
	}
	sizes := types.SizesFor("gc", goarch)
	if sizes == nil {
		return 0, fmt.Errorf("no sizes for GOARCH %s", goarch)
	}
	checked := map[string]*types.Package{"unsafe": types.Unsafe}
	fset := token.NewFileSet()
	var errs []error
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return n, err
		}
		if p.ImportPath == "unsafe" {
			continue
		}
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("%s: %s", p.ImportPath, p.Error.Err))
			continue
		}
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			files = append(files, f)
		}
		conf := types.Config{
			Sizes: sizes,
			Importer: importerFunc(func(path string) (*types.Package, error) {
				if mapped, ok := p.ImportMap[path]; ok {
					path = mapped
				}
				if pkg := checked[path]; pkg != nil {
					return pkg, nil
				}
				return nil, fmt.Errorf("%s was not type-checked (it failed, or go list did not list it)", path)
			}),
		}
		if p.Module != nil && p.Module.GoVersion != "" {
			conf.GoVersion = "go" + p.Module.GoVersion
		}
		var pkgErrs []error
		conf.Error = func(err error) {
			if len(pkgErrs) < 10 {
				pkgErrs = append(pkgErrs, err)
			}
		}
		pkg, _ := conf.Check(p.ImportPath, fset, files, nil)
		n++
		if len(pkgErrs) > 0 {
			errs = append(errs, pkgErrs...)
			continue
		}
		checked[p.ImportPath] = pkg
	}
	return n, errors.Join(errs...)
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }
