package pkg

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/package-url/packageurl-go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/coach-build/coach/pipeline/resolve"
)

func TestComponentPURL(t *testing.T) {
	for _, c := range []struct {
		src  resolve.Source
		name string
		want string
	}{
		{resolve.Source{URL: "https://zlib.net/fossils/zlib-1.3.1.tar.gz", SHA256: "9a93"}, "zlib",
			"pkg:generic/zlib@1.0.0?checksum=sha256:9a93&download_url=https:%2F%2Fzlib.net%2Ffossils%2Fzlib-1.3.1.tar.gz"},
		{resolve.Source{URL: "https://github.com/PCRE2Project/pcre2/releases/download/pcre2-10.42/pcre2-10.42.tar.bz2", SHA256: "8d36"}, "pcre2",
			"pkg:github/pcre2project/pcre2@1.0.0"},
		{resolve.Source{URL: "https://files.pythonhosted.org/packages/source/P/PyYAML/PyYAML-6.0.1.tar.gz", SHA256: "bfdf"}, "PyYAML",
			"pkg:pypi/pyyaml@1.0.0"},
		{resolve.Source{URL: "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz", SHA512: "aa"}, "left-pad",
			"pkg:npm/left-pad@1.0.0"},
		{resolve.Source{URL: "https://registry.npmjs.org/@scope/tool/-/tool-1.0.0.tgz"}, "tool",
			"pkg:npm/%40scope/tool@1.0.0"},
		{resolve.Source{Git: "https://github.com/madler/zlib.git", Commit: "51b7f2abdade71cd9bb0e7a373ef2610ec6f9daf"}, "zlib",
			"pkg:github/madler/zlib@51b7f2abdade71cd9bb0e7a373ef2610ec6f9daf"},
		{resolve.Source{Git: "https://git.example.com/lib.git", Commit: "abc"}, "lib",
			"pkg:generic/lib@1.0.0?vcs_url=git%2Bhttps:%2F%2Fgit.example.com%2Flib.git%40abc"},
		{resolve.Source{Path: "app"}, "app", "pkg:generic/app@1.0.0"},
	} {
		got := ComponentPURL(resolve.Component{Name: c.name, Version: "1.0.0", Source: c.src})
		if got.ToString() != c.want {
			t.Errorf("%s: %s, want %s", c.name, got.ToString(), c.want)
		}
		if _, err := packageurl.FromString(got.ToString()); err != nil {
			t.Errorf("%s: %v", got.ToString(), err)
		}
	}
}

// cyclonedxSchema compiles the CycloneDX 1.6 schema the cyclonedx-go
// module ships, with an independent JSON Schema implementation.
func cyclonedxSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/CycloneDX/cyclonedx-go").Output()
	if err != nil {
		t.Skipf("cannot find the cyclonedx-go module's schemas: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "schema")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	// The schema names its companions by their cyclonedx.org URLs; the
	// module holds them, and the test reads nothing from the network.
	c.UseLoader(jsonschema.SchemeURLLoader{"file": jsonschema.FileLoader{}, "http": localSchemas(dir), "https": localSchemas(dir)})
	s, err := c.Compile(filepath.Join(dir, "bom-1.6.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type localSchemas string

func (d localSchemas) Load(url string) (any, error) {
	if filepath.Base(url) == "jsf-0.82.schema.json" {
		// The JSON Signature Format schema is not in the module; it only
		// constrains "signature" members, which coach's documents do not
		// have. Any signature would pass this stand-in.
		return map[string]any{"definitions": map[string]any{"signature": map[string]any{}}}, nil
	}
	f, err := os.Open(filepath.Join(string(d), filepath.Base(url)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}

// TestSBOMsValidate writes a release and checks both SBOMs with their
// own tools: the SPDX document read back and validated by spdx's
// tools-golang, the CycloneDX one against CycloneDX's JSON Schema; and
// every component carries a package URL in both.
func TestSBOMsValidate(t *testing.T) {
	need(t, "strip")
	root, tree, p := fixture(t)
	rel := release(t, root, tree, p, t.TempDir(), "debian-12", "el9")
	spdxData := must(os.ReadFile(rel.SBOM))
	doc, err := spdxjson.Read(bytes.NewReader(spdxData))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("spdxlib: %v", err)
	}
	purls := map[string]string{}
	for _, pk := range doc.Packages {
		for _, r := range pk.PackageExternalReferences {
			if r.RefType == "purl" {
				purls[pk.PackageName] += r.Locator + " "
			}
		}
	}
	for _, name := range []string{"app", "zlib"} {
		if purls[name] == "" {
			t.Errorf("SPDX: %s has no purl", name)
		}
	}
	if !strings.Contains(purls["app"], "pkg:deb/example-inc/app@1.2.0-1%2Bdeb12?arch=amd64&distro=debian-12") ||
		!strings.Contains(purls["app"], "pkg:rpm/example-inc/app@1.2.0-1.el9?arch=x86_64&distro=el9") {
		t.Errorf("SPDX: the packages' purls: %s", purls["app"])
	}

	cdxData := must(os.ReadFile(rel.CycloneDX))
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(cdxData))
	if err != nil {
		t.Fatal(err)
	}
	if err := cyclonedxSchema(t).Validate(inst); err != nil {
		t.Errorf("CycloneDX schema: %v", err)
	}
	var bom struct {
		Components []struct {
			Name, Purl string
		}
		Dependencies []struct {
			Ref       string
			DependsOn []string
		}
	}
	json.Unmarshal(cdxData, &bom)
	if len(bom.Components) != 2 {
		t.Errorf("CycloneDX lists %d components", len(bom.Components))
	}
	for _, c := range bom.Components {
		if _, err := packageurl.FromString(c.Purl); err != nil || c.Purl == "" {
			t.Errorf("CycloneDX: %s has purl %q (%v)", c.Name, c.Purl, err)
		}
	}
	if !strings.Contains(string(cdxData), `"dependsOn": [`) {
		t.Error("CycloneDX: no dependency graph")
	}
	if sums := string(must(os.ReadFile(rel.Sums))); !strings.Contains(sums, CycloneDXFile(p)) {
		t.Errorf("SHA256SUMS does not list the CycloneDX document:\n%s", sums)
	}
	// A document that breaks the schema is caught: the check can fail.
	broken := strings.Replace(string(cdxData), `"type": "library"`, `"type": "gadget"`, 1)
	binst, _ := jsonschema.UnmarshalJSON(strings.NewReader(broken))
	if cyclonedxSchema(t).Validate(binst) == nil {
		t.Error("the schema accepted a component of type gadget")
	}
}
