package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/spec"
)

var newName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

func (a *app) newCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Create a project or software definition from a template",
	}
	cmd.AddCommand(a.newProjectCommand(), a.newSoftwareCommand())
	return cmd
}

// file is one file a template writes.
type file struct {
	path string
	mode os.FileMode
	body string
}

// writeNew creates files, refusing to overwrite any that exist, and checks
// the repository afterwards so that what it wrote is known to be valid.
func (a *app) writeNew(files []file) error {
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(a.dir, f.path)); err == nil {
			return usageError(fmt.Errorf("%s already exists; remove it or choose another name", f.path))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(a.dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			return err
		}
		written = append(written, f.path)
		if !a.json {
			fmt.Fprintf(a.stdout, "created %s\n", f.path)
		}
	}
	// The schemas the files' modelines name, for editors.
	schemas, err := writeSchemas(a.dir, false)
	if err != nil {
		return err
	}
	for _, p := range schemas {
		written = append(written, p)
		if !a.json {
			fmt.Fprintf(a.stdout, "created %s\n", p)
		}
	}
	a.output(map[string][]string{"created": written})
	return nil
}

func render(text string, data any) string {
	var b strings.Builder
	template.Must(template.New("").Delims("<%", "%>").Parse(text)).Execute(&b, data)
	return b.String()
}

const projectTemplate = `# yaml-language-server: $schema=../` + schemaDir + `/project.schema.json
# <%.Name%>: every field is in coach's docs/reference/definitions.md.
name: <%.Name%>
description: <%.Name%>, built with coach
maintainer: <%.Maintainer%>
homepage: https://example.com/<%.Name%>
license: Apache-2.0
version: 0.1.0
iteration: 1
install_dir: /opt/<%.Name%>
software: [<%.Software%>]
<%- if .Engine%>
# Debian with the sandbox or the engine; el9 with the Dagger engine.
targets: [debian-12, debian-13, el9]
<%- else%>
# The sandbox runner builds the Debian targets. For el9 (rpm), add it here and
# build with --runner dagger and an engine, or package the Debian tree as el9:
# coach package <%.Name%> -t el9 --from debian-12.
targets: [debian-12, debian-13]
<%- end%>
package:
  links:
    /usr/bin/<%.Name%>: /opt/<%.Name%>/bin/<%.Name%>
health:
  ignore: ["embedded/share/**", "embedded/include/**"]
verify:
  - /opt/<%.Name%>/bin/<%.Name%> --version
`

const softwareTemplate = `# yaml-language-server: $schema=../` + schemaDir + `/software.schema.json
# <%.Name%>: every field is in coach's docs/reference/definitions.md.
name: <%.Name%>
license: <%.License%>
license_files: [LICENSE]
versions:
<%- if .URL%>
  - version: <%.Version%>
    url: <%.URL%>
    sha256: <%.SHA256%>
relative_path: "<%.Name%>-{{.Version}}"
build:
  - ./configure --prefix={{.Embedded}}
  - make            # plain make: the sandbox's job server gives it the cores
  - make install
<%- else%>
  - version: <%.Version%>
    path: <%.Name%>
build:
  - make PREFIX={{.InstallDir}} VERSION={{.Version}}
  - make install PREFIX={{.InstallDir}}
<%- end%>
`

const skeletonMakefile = `# A placeholder build for <%.Name%>: replace it with the real one.
PREFIX ?= /usr/local
VERSION ?= 0.0.0

all: <%.Name%>

<%.Name%>:
	printf '#!/bin/sh\necho "<%.Name%> $(VERSION)"\n' > $@
	chmod +x $@

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 <%.Name%> $(DESTDIR)$(PREFIX)/bin/

.PHONY: all install
`

func (a *app) newProjectCommand() *cobra.Command {
	var maintainer string
	cmd := &cobra.Command{
		Use:   "project <name>",
		Short: "Write projects/<name>.yaml (and a placeholder software)",
		Long: `new project writes projects/<name>.yaml. When software/<name>.yaml does
not exist it also writes one, with a placeholder source under
software/<name>/, so the new project validates and builds at once.

It writes no lifecycle hooks: a hook that does nothing still runs at every
install and removal, and lintian flags it (maintainer-script-empty). Add
the ones the package needs as executable scripts under scripts/<name>/
(preinst, postinst, prerm, postrm; docs/definitions.md says what each
is given).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !newName.MatchString(name) {
				return usageError(fmt.Errorf("%q is not a valid package name: use lower case letters, digits and + - ., at least two characters", name))
			}
			data := map[string]string{"Name": name, "Maintainer": maintainer, "Software": name, "License": "Apache-2.0", "Version": "0.1.0"}
			// Only targets this machine can build: el9 needs an engine.
			if runners.DaggerConfigured() {
				data["Engine"] = "yes"
			}
			files := []file{{path: filepath.Join("projects", name+".yaml"), mode: 0o644, body: render(projectTemplate, data)}}
			if _, err := os.Stat(filepath.Join(a.dir, "software", name+".yaml")); errors.Is(err, fs.ErrNotExist) {
				files = append(files,
					file{path: filepath.Join("software", name+".yaml"), mode: 0o644, body: render(softwareTemplate, data)},
					file{path: filepath.Join("software", name, "Makefile"), mode: 0o644, body: render(skeletonMakefile, data)},
					file{path: filepath.Join("software", name, "LICENSE"), mode: 0o644, body: "Replace this with the license of " + name + ".\n"},
				)
			}
			if err := a.writeNew(files); err != nil {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&maintainer, "maintainer", "Example Maintainers <pkg@example.com>", "package maintainer, Name <email>")
	return cmd
}

func (a *app) newSoftwareCommand() *cobra.Command {
	var version, url, sum, license string
	var mirrors []string
	cmd := &cobra.Command{
		Use:   "software <name>",
		Short: "Write software/<name>.yaml",
		Long: `new software writes software/<name>.yaml.

With --url (an http, https or file URL, or a mirror template such as
'{{mirror "debian"}}/pool/main/z/zlib/zlib_1.3.orig.tar.gz'), coach
downloads the archive once (from --source-mirror first), pins its sha256
(or checks it against --sha256) and reads it: the definition gets the
directory the archive unpacks to as relative_path, the licence files at
its top (and their SPDX identifier when the text is a licence coach knows;
--license overrides it), and build steps for the build system it finds:
a generated ./configure, configure.ac without one (autoreconf first),
CMake, Meson, a plain Makefile, Python or Go, with the build packages each
needs. What the steps assume is written as comments. When the archive
cannot be downloaded but --sha256 pins it, the definition is written from
the name alone, with a warning.

Without --url it builds from a placeholder source under software/<name>/
kept in the repository.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !newName.MatchString(name) {
				return usageError(fmt.Errorf("%q is not a valid software name: use lower case letters, digits and + - .", name))
			}
			if url == "" && sum != "" {
				return usageError(errors.New("--sha256 pins a --url: give both, or --url alone to have coach compute it"))
			}
			data := map[string]string{"Name": name, "Version": version, "URL": yamlString(url), "SHA256": sum, "License": cmp.Or(license, "Apache-2.0")}
			body := render(softwareTemplate, data)
			// A --sha256 that is no sha256 is reported with its position
			// by the validation of what is written, without a download.
			if url != "" && (sum == "" || spec.HexDigest(sum, 64)) {
				ctx, stop := a.signalContext()
				defer stop()
				src, got, err := a.readArchive(ctx, url, sum, mirrors, name, version)
				var mismatch *mismatchError
				switch {
				case err != nil && (sum == "" || errors.As(err, &mismatch)):
					return err
				case err != nil:
					a.log.Warn("could not read the archive: the definition is written from its name alone", "url", url, "err", err)
				default:
					sum = got
					body = scaffoldSoftware(name, version, url, sum, license, src)
				}
			}
			files := []file{{path: filepath.Join("software", name+".yaml"), mode: 0o644, body: body}}
			if url == "" {
				files = append(files,
					file{path: filepath.Join("software", name, "Makefile"), mode: 0o644, body: render(skeletonMakefile, data)},
					file{path: filepath.Join("software", name, "LICENSE"), mode: 0o644, body: "Replace this with the license of " + name + ".\n"})
			}
			if err := a.writeNew(files); err != nil {
				return err
			}
			// Parse what was written, so a bad --version or --sha256 is
			// reported now rather than at the next build.
			if _, err := spec.Load(a.dir); err != nil {
				return withCode(exitInvalid, fmt.Errorf("created, but the definitions do not validate:\n%w", err))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "0.1.0", "the first version")
	cmd.Flags().StringVar(&url, "url", "", "release archive URL")
	cmd.Flags().StringVar(&sum, "sha256", "", "sha256 of the archive (default: computed by downloading it once)")
	cmd.Flags().StringVar(&license, "license", "", "SPDX license of the software (default: what the archive's licence files say, else Apache-2.0 without --url)")
	cmd.Flags().StringArrayVar(&mirrors, "source-mirror", nil, "file:// or http(s):// mirror base tried before upstream (repeatable; also $COACH_SOURCE_MIRROR)")
	return cmd
}
