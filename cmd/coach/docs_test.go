package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated CLI reference in docs/")

// genDocs writes the CLI reference (Markdown, one page per command) and
// the man pages into dir, from the commands themselves.
func genDocs(t *testing.T, dir string) {
	t.Helper()
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	root := a.rootCommand()
	root.DisableAutoGenTag = true
	for _, sub := range []string{"cli", "man"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	if err := doc.GenMarkdownTree(root, filepath.Join(dir, "cli")); err != nil {
		t.Fatal(err)
	}
	// The man pages go through Markdown (go-md2man), where <project>
	// would be an HTML tag and vanish from the synopsis: escaped.
	var escape func(c *cobra.Command)
	escape = func(c *cobra.Command) {
		c.Use = strings.NewReplacer("<", `\<`, ">", `\>`).Replace(c.Use)
		for _, sub := range c.Commands() {
			escape(sub)
		}
	}
	escape(root)
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// No title: each page is titled after its command (COACH-BUILD).
	if err := doc.GenManTree(root, &doc.GenManHeader{Section: "1", Source: "coach", Manual: "coach manual", Date: &date}, filepath.Join(dir, "man")); err != nil {
		t.Fatal(err)
	}
}

// TestManPages: each page is titled after its command, and the synopsis
// keeps the arguments (coach build <project> [flags]).
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	genDocs(t, dir)
	page, err := os.ReadFile(filepath.Join(dir, "man", "coach-build.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `.TH "COACH-BUILD" "1"`) {
		t.Errorf("coach-build.1's title:\n%s", head(string(page), 3))
	}
	if !strings.Contains(string(page), `coach build <project> [flags]`) {
		t.Errorf("coach-build.1's synopsis lost its arguments:\n%s", head(string(page), 12))
	}
}

func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// TestCLIReferenceIsCurrent keeps docs/cli and docs/man what the commands
// say: go test ./cmd/coach -run TestCLIReferenceIsCurrent -update.
func TestCLIReferenceIsCurrent(t *testing.T) {
	docs := "../../docs"
	if *updateDocs {
		os.RemoveAll(filepath.Join(docs, "cli"))
		os.RemoveAll(filepath.Join(docs, "man"))
		genDocs(t, docs)
	}
	fresh := t.TempDir()
	genDocs(t, fresh)
	for _, sub := range []string{"cli", "man"} {
		want, _ := filepath.Glob(filepath.Join(fresh, sub, "*"))
		have, _ := filepath.Glob(filepath.Join(docs, sub, "*"))
		if len(want) != len(have) {
			t.Errorf("docs/%s has %d files, the commands make %d: go test ./cmd/coach -run TestCLIReferenceIsCurrent -update", sub, len(have), len(want))
			continue
		}
		for _, w := range want {
			a, _ := os.ReadFile(w)
			b, err := os.ReadFile(filepath.Join(docs, sub, filepath.Base(w)))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("docs/%s/%s is out of date: go test ./cmd/coach -run TestCLIReferenceIsCurrent -update", sub, filepath.Base(w))
			}
		}
	}
}

// TestDocsCommandsParse finds every coach command line in the README and
// docs/ (lines of code blocks that start with "coach ") and checks that
// it names a real command with flags it takes.
func TestDocsCommandsParse(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	line := regexp.MustCompile(`^\s*(?:\$ |sudo )?(?:go run \./cmd/coach|coach) ([^#|>&;]*)`)
	// Inline code spans that are whole command lines, without placeholders.
	span := regexp.MustCompile("`coach ([^`<\\[|.]*)`")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inCode := false
		for i, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				inCode = !inCode
				continue
			}
			var found []string
			if m := line.FindStringSubmatch(l); inCode && m != nil {
				found = append(found, m[1])
			}
			if !inCode {
				for _, m := range span.FindAllStringSubmatch(l, -1) {
					found = append(found, m[1])
				}
			}
			for _, c := range found {
				args := splitShell(strings.TrimSpace(c))
				if slices.ContainsFunc(args, placeholder) {
					continue // a usage line (coach build --jobs J), not a command
				}
				a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
				root := a.rootCommand()
				root.InitDefaultVersionFlag()
				cmd, rest, err := root.Find(args)
				if err == nil {
					cmd.InitDefaultHelpFlag()
					err = cmd.ParseFlags(rest)
				}
				if err != nil {
					t.Errorf("%s:%d: coach %s: %v", f, i+1, c, err)
				}
				n++
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d command lines", n)
	}
	t.Logf("%d command lines parse", n)
}

// placeholder is an upper-case word standing for a value (J, DIR).
func placeholder(s string) bool {
	return s != "" && strings.ToUpper(s) == s && strings.ToLower(s) != s && !strings.HasPrefix(s, "-")
}

// splitShell splits a command line on spaces, keeping quoted words.
func splitShell(s string) []string {
	var out []string
	var cur strings.Builder
	quote := rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '\'' || r == '"'):
			quote = r
		case quote == 0 && r == ' ':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// TestDocsLinksResolve checks every relative link of the README and docs/
// (generated pages included): the file it names exists, and an anchor is a
// heading of that file (GitHub's slugs), so that moving a section breaks
// this test rather than the docs.
func TestDocsLinksResolve(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	more, _ := filepath.Glob("../../docs/*/*.md")
	files = append(append(files, more...), "../../README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headings := map[string]map[string]bool{}
	anchors := func(path string) map[string]bool {
		if h, ok := headings[path]; ok {
			return h
		}
		h := map[string]bool{}
		data, _ := os.ReadFile(path)
		inCode := false
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				inCode = !inCode
			}
			if !inCode && strings.HasPrefix(l, "#") {
				h[slug(strings.TrimLeft(l, "# "))] = true
			}
		}
		headings[path] = h
		return h
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(string(data), "\n") {
			for _, m := range link.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				p, frag, _ := strings.Cut(target, "#")
				path := f
				if p != "" {
					path = filepath.Join(filepath.Dir(f), p)
					if _, err := os.Stat(path); err != nil {
						t.Errorf("%s:%d: link %s: no such file", f, i+1, target)
						continue
					}
				}
				if frag != "" && strings.HasSuffix(path, ".md") && !anchors(path)[frag] {
					t.Errorf("%s:%d: link %s: %s has no heading #%s", f, i+1, target, filepath.Base(path), frag)
				}
				n++
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d links", n)
	}
	t.Logf("%d links resolve", n)
}

// slug is GitHub's anchor for a heading: lower case, punctuation but - and
// _ dropped, spaces as dashes.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
