package scaffold

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"go.yaml.in/yaml/v3"

	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/spec"
)

func TestInspectFindsTheBuildSystem(t *testing.T) {
	exe := &fstest.MapFile{Data: []byte("#!/bin/sh\n"), Mode: 0o755}
	f := &fstest.MapFile{Data: []byte("x\n")}
	for _, tc := range []struct {
		name   string
		files  []string
		system string
		first  string // the first step
		pkgs   []string
	}{
		{"generated configure", []string{"configure", "configure.ac", "Makefile.in"}, Autotools, "./configure --prefix={{.Embedded}} --disable-static", nil},
		{"own configure", []string{"configure", "Makefile"}, Autotools, "./configure --prefix={{.Embedded}}", nil},
		{"configure.ac alone", []string{"configure.ac", "Makefile.am"}, Autoreconf, "autoreconf -fi", []string{"autoconf", "automake", "libtool"}},
		{"configure wins over CMake", []string{"configure", "configure.ac", "CMakeLists.txt"}, Autotools, "./configure --prefix={{.Embedded}} --disable-static", nil},
		{"cmake", []string{"CMakeLists.txt", "src/x.c"}, CMake, "cmake -S . -B coach-build -DCMAKE_INSTALL_PREFIX={{.Embedded}}", []string{"cmake"}},
		{"meson", []string{"meson.build"}, Meson, "meson setup coach-build --prefix={{.Embedded}} --libdir=lib", []string{"meson", "ninja-build"}},
		{"makefile", []string{"Makefile", "x.c"}, Make, "make PREFIX={{.Embedded}}", nil},
		{"python", []string{"pyproject.toml"}, Python, "{{.Embedded}}/bin/python3 -m pip install", nil},
		{"go vendored", []string{"go.mod", "vendor/modules.txt"}, Go, "mkdir -p {{.Embedded}}/bin", []string{"golang-go"}},
		{"nothing", []string{"README"}, Unknown, "echo", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, n := range tc.files {
				if n == "configure" {
					fsys["app-1.2.3/"+n] = exe
				} else {
					fsys["app-1.2.3/"+n] = f
				}
			}
			s := inspect(fsys, "app-1.2.3", "app", "1.2.3")
			if s.System != tc.system || !strings.HasPrefix(s.Steps[0], tc.first) || !slices.Equal(s.BuildPackages["deb"], tc.pkgs) {
				t.Errorf("system %s, steps %q, deb packages %v", s.System, s.Steps, s.BuildPackages["deb"])
			}
			if s.RelativePath != "app-{{.Version}}" {
				t.Errorf("relative path %q", s.RelativePath)
			}
		})
	}
}

func TestInspectFindsLicenceFiles(t *testing.T) {
	mit := "Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software ..."
	fsys := fstest.MapFS{
		"name-name-0.16-20220414/License":     {Data: []byte(mit)},
		"name-name-0.16-20220414/COPYING.LIB": {Data: []byte("unknown terms")},
		"name-name-0.16-20220414/LICENSES/x":  {Data: []byte("a directory is not a licence file")},
		"name-name-0.16-20220414/Makefile":    {Data: []byte("all:\n")},
	}
	s := inspect(fsys, "name-name-0.16-20220414", "name", "0.16")
	if !slices.Equal(s.LicenseFiles, []string{"COPYING.LIB", "License"}) || s.License != "MIT" || s.Licenses["License"] != "MIT" {
		t.Errorf("licence files %v, licence %q (%v)", s.LicenseFiles, s.License, s.Licenses)
	}
	if s.RelativePath != "name-name-{{.Version}}-20220414" {
		t.Errorf("relative path %q", s.RelativePath)
	}
}

// TestIdentify: the licence texts Debian ships in /usr/share/common-licenses
// and short texts of the permissive licences.
func TestIdentify(t *testing.T) {
	for file, want := range map[string]string{
		"GPL-2": "GPL-2.0-or-later", "GPL-3": "GPL-3.0-or-later", "LGPL-2": "LGPL-2.0-or-later",
		"LGPL-2.1": "LGPL-2.1-or-later", "LGPL-3": "LGPL-3.0-or-later", "Apache-2.0": "Apache-2.0", "MPL-2.0": "MPL-2.0",
		"BSD": "BSD-3-Clause",
	} {
		b, err := os.ReadFile(filepath.Join("/usr/share/common-licenses", file))
		if err != nil {
			t.Logf("no %s here: %v", file, err)
			continue
		}
		if got := Identify(string(b)); got != want {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}
	for text, want := range map[string]string{
		"/* This software is provided 'as-is', without any express or implied\n * warranty. ... Permission is granted to anyone to use this software for any purpose, */":                                         "Zlib",
		"Permission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee is hereby granted":                                                                                 "ISC",
		"Redistribution and use in source and binary forms, with or without\nmodification, are permitted ...":                                                                                                     "BSD-2-Clause",
		"COPYRIGHT AND PERMISSION NOTICE\n\nCopyright (c) 1996 - 2023, Daniel Stenberg ...\nPermission to use, copy, modify, and distribute this software for any purpose\nwith or without fee is hereby granted": "curl",
		"This is free and unencumbered software released into the public domain.":                                                                                                                                 "Unlicense",
		"All rights reserved. Ask us.": "",
	} {
		if got := Identify(text); got != want {
			t.Errorf("%q: %q, want %q", text, got, want)
		}
	}
}

// TestInspectRealArchives reads Debian's orig tarballs (.ci/fetch-debian-sources)
// as coach new software --url does, and checks the definitions it writes
// parse and validate.
func TestInspectRealArchives(t *testing.T) {
	dir := testroots.DebianSources(t)
	for _, tc := range []struct {
		glob, name, version, system, license string
		files                                []string
	}{
		{"zlib_1.2.13.dfsg.orig.tar.*", "zlib", "1.2.13", Autotools, "Zlib", []string{"LICENSE"}},
		{"xz-utils_5.4.1.orig.tar.*", "xz", "5.4.1", Autotools, "GPL-2.0-or-later AND GPL-3.0-or-later AND LGPL-2.1-or-later", []string{"COPYING", "COPYING.GPLv2", "COPYING.GPLv3", "COPYING.LGPLv2.1"}},
		{"libyaml_0.2.5.orig.tar.*", "libyaml", "0.2.5", Autoreconf, "MIT", []string{"License"}},
		{"bzip2_1.0.8.orig.tar.*", "bzip2", "1.0.8", Make, "bzip2-1.0.6", []string{"LICENSE"}},
		{"curl_*.orig.tar.*", "curl", "", Autotools, "curl", []string{"COPYING"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := filepath.Glob(filepath.Join(dir, tc.glob))
			if len(m) == 0 {
				t.Skipf("no %s in %s", tc.glob, dir)
			}
			s, err := Inspect(m[0], filepath.Base(m[0]), tc.name, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			if s.System != tc.system || s.License != tc.license || !slices.Equal(s.LicenseFiles, tc.files) {
				t.Errorf("system %s, licence %q %v, files %v", s.System, s.License, s.Licenses, s.LicenseFiles)
			}
			if tc.version != "" && !strings.Contains(s.RelativePath, "{{.Version}}") {
				t.Errorf("relative path %q (top %q)", s.RelativePath, s.TopDir)
			}
			repo := t.TempDir()
			os.MkdirAll(filepath.Join(repo, "software"), 0o755)
			def := Definition("pipeline/spec/schema", Pin{Name: tc.name, Version: "1.0.0", URL: `{{mirror "debian"}}/pool/main/x/` + filepath.Base(m[0]), SHA256: strings.Repeat("a", 64)}, s)
			os.WriteFile(filepath.Join(repo, "software", tc.name+".yaml"), []byte(def), 0o644)
			if _, err := spec.Load(repo); err != nil {
				t.Errorf("the definition does not validate: %v\n%s", err, def)
			}
		})
	}
}

// TestYAMLString: what YAMLString writes reads back as the same string.
func TestYAMLString(t *testing.T) {
	for _, s := range []string{"cmk-{{.Version}}", `{{mirror "debian"}}/pool/main/z/zlib_1.3.orig.tar.gz`, "1.0", "5.4.1", "yes", "a: b", "# x", "x #y", "it's", "-x", "./configure --prefix={{.Embedded}}", "make", "https://zlib.net/zlib-1.3.1.tar.gz", "[x]"} {
		var got struct{ V string }
		if err := yaml.Unmarshal([]byte("v: "+YAMLString(s)+"\n"), &got); err != nil || got.V != s {
			t.Errorf("%q written as %s reads back as %q (%v)", s, YAMLString(s), got.V, err)
		}
	}
}
