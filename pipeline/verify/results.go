package verify

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/target"
)

// resultsSchema is mixed into every verify cache key; bump it when verify's
// checks change, so that every package is verified again. 2: installs run
// offline in coach's user namespace, rpm inside the sandbox. 3: entries
// carry their digest.
const resultsSchema = 3

// Results keeps the reports of packages that passed verification,
// under a key of everything the result depends on: the package's bytes
// (and the previous package's, for an upgrade), the target's definition,
// the clean root or image it was installed in, and the project's checks.
type Results struct{ Dir string }

func (c Results) path(key string) string {
	return filepath.Join(c.Dir, strings.TrimPrefix(key, digest.Prefix)+".json")
}

// Key is the cache key of a verification, or "" when it cannot be made.
// pkg is the package's digest when the caller knows it (packaging just
// computed it), else "" to read the file.
func (c Results) Key(o Options, r runner.Runner, pkg string) string {
	var err error
	if pkg == "" {
		if pkg, err = digest.File(o.Package); err != nil {
			return ""
		}
	}
	prev := ""
	if o.Previous != "" {
		if prev, err = digest.File(o.Previous); err != nil {
			return ""
		}
	}
	var env string
	if v, ok := r.(runner.Verifier); ok {
		env = v.VerifyEnvironmentID(o.Target, o.Arch)
	} else {
		root, extra := o.Target, []string(nil)
		if root.Format == target.FormatRPM {
			// rpm packages are checked with Debian's rpm in a clean Debian
			// root, as verify does.
			root, _ = target.Builtin("debian-12")
			extra = []string{"rpm"}
		}
		env = "sandbox " + sandbox.CleanKey(root, o.Arch, extra...)
	}
	type checks struct {
		Name, InstallDir string
		Verify           []string
		Links            map[string]string
	}
	var ch *checks
	if p := o.Project; p != nil {
		ch = &checks{p.Name, p.InstallDir, p.Verify, p.Package.LinksFor(o.Target)}
	}
	return digest.JSON(struct {
		Schema            int
		Package, Previous string
		Name              string
		Target            target.Target
		Environment       string
		Checks            *checks
	}{resultsSchema, pkg, prev, o.Name, o.Target, env, ch})
}

// entry is what the verify cache stores: the report, and the digest of
// its encoding, so that a damaged entry is never taken for a pass.
type verifyEntry struct {
	Report json.RawMessage `json:"report"`
	Digest string          `json:"digest"`
}

// Get is the passing report stored under key, marked Cached, or nil.
func (c Results) Get(key string) *Report {
	if key == "" {
		return nil
	}
	data, err := os.ReadFile(c.path(key))
	if err != nil {
		return nil
	}
	var e verifyEntry
	if json.Unmarshal(data, &e) != nil || digest.Bytes(e.Report) != e.Digest {
		os.Remove(c.path(key)) // damaged: verified again, and stored again
		return nil
	}
	var r Report
	if json.Unmarshal(e.Report, &r) != nil || !r.OK {
		return nil
	}
	r.Cached = true
	return &r
}

// Put keeps a passing report.
func (c Results) Put(key string, r *Report) {
	if key == "" || r == nil || !r.OK {
		return
	}
	report, err := json.Marshal(r)
	if err != nil {
		return
	}
	data, err := json.Marshal(verifyEntry{Report: report, Digest: digest.Bytes(report)})
	if err != nil {
		return
	}
	if os.MkdirAll(c.Dir, 0o755) != nil {
		return
	}
	durable.WriteFile(c.path(key), data, 0o644)
}

// CheckResult checks a stored result against its digest, and says how
// many bytes it read.
func CheckResult(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var e verifyEntry
	if json.Unmarshal(data, &e) != nil || digest.Bytes(e.Report) != e.Digest {
		return int64(len(data)), errors.New("its report does not match its digest")
	}
	return int64(len(data)), nil
}
