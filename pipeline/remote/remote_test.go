package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/remote/remotetest"
)

// tree makes a small layer tree and returns its directory and digest.
func tree(t *testing.T, content string) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layer")
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "lib", "empty"), 0o700)
	os.WriteFile(filepath.Join(dir, "bin", "tool"), []byte("#!/bin/sh\necho "+content+"\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib", "libx.so.1"), bytes.Repeat([]byte(content), 1000), 0o644)
	os.Symlink("libx.so.1", filepath.Join(dir, "lib", "libx.so"))
	// Links a real layer has: into the install dir, to the system.
	os.Symlink("/opt/app/bin/tool", filepath.Join(dir, "bin", "tool2"))
	os.Symlink("/etc/ssl/certs/ca-certificates.crt", filepath.Join(dir, "lib", "cert.pem"))
	os.Symlink("../../../etc/passwd", filepath.Join(dir, "lib", "up"))
	return dir, digestOf(t, dir)
}

func digestOf(t *testing.T, dir string) string {
	t.Helper()
	root, err := confine.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	d, err := confine.TreeDigest(root)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const key = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func open(t *testing.T, host string, o Options) (*Cache, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	o.Log = slog.New(slog.NewTextHandler(lb, nil))
	c, err := Open("oci://"+host+"/team/coach-cache", o)
	if err != nil {
		t.Fatal(err)
	}
	return c, lb
}

// TestLayerRoundTrip pushes a layer to a real registry and pulls it into
// another directory: the same tree (digest), the same metadata, and a
// second push of the same tree uploads the same blob (the tar is a
// function of the tree).
func TestLayerRoundTrip(t *testing.T) {
	reg := remotetest.Start(t)
	ctx := context.Background()
	dir, want := tree(t, "one")
	meta := []byte(`{"key":"` + key + `","digest":"` + want + `"}`)
	w, _ := open(t, reg.Host, Options{Push: true})
	if has, err := w.HasLayer(ctx, key); err != nil || has {
		t.Fatalf("HasLayer before the push = %v, %v", has, err)
	}
	if err := w.PushLayer(ctx, key, dir, meta, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if has, err := w.HasLayer(ctx, key); err != nil || !has {
		t.Fatalf("HasLayer after the push = %v, %v", has, err)
	}
	r, _ := open(t, reg.Host, Options{})
	out := filepath.Join(t.TempDir(), "pulled")
	got, err := r.PullLayer(ctx, key, out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, meta) {
		t.Errorf("metadata = %s, want %s", got, meta)
	}
	if d := digestOf(t, out); d != want {
		t.Errorf("pulled tree digest %s, pushed %s", d, want)
	}
	if st := r.Stats(); st.Pulled != 1 || st.PulledBytes == 0 {
		t.Errorf("stats %+v", st)
	}
	// The same tree with other times and owners makes the same blob.
	var first, second bytes.Buffer
	if err := WriteTree(dir, &first); err != nil {
		t.Fatal(err)
	}
	if err := WriteTree(out, &second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("the same tree wrote two different tars")
	}
	// A reader does not push.
	if err := r.PushLayer(ctx, strings.Replace(key, "1", "2", -1), dir, meta, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if has, _ := r.HasLayer(ctx, strings.Replace(key, "1", "2", -1)); has {
		t.Error("a cache opened without Push pushed")
	}
	// A miss is fs.ErrNotExist.
	if _, err := r.PullLayer(ctx, strings.Replace(key, "1", "3", -1), filepath.Join(t.TempDir(), "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("miss: %v", err)
	}
}

// TestConcurrentPushes: two writers of one key at once both succeed and
// the entry is whole.
func TestConcurrentPushes(t *testing.T) {
	reg := remotetest.Start(t)
	ctx := context.Background()
	dir, want := tree(t, "both")
	meta := []byte(`{"key":"` + key + `"}`)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		c, _ := open(t, reg.Host, Options{Push: true})
		wg.Go(func() { errs[i] = c.PushLayer(ctx, key, dir, meta, t.TempDir()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pusher %d: %v", i, err)
		}
	}
	r, _ := open(t, reg.Host, Options{})
	out := filepath.Join(t.TempDir(), "pulled")
	if _, err := r.PullLayer(ctx, key, out); err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, out); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}
}

// TestTamperedBlobRefused: an entry whose tree blob is not what its
// manifest says is refused (the registry's word is not taken), and a
// tar that tries to leave its directory is refused by the confined
// extraction.
func TestTamperedBlobRefused(t *testing.T) {
	reg := remotetest.Start(t)
	ctx := context.Background()
	w, _ := open(t, reg.Host, Options{Push: true})
	// An entry whose tree escapes: a symlink out, then a file through it.
	evil := filepath.Join(t.TempDir(), "evil.tar")
	writeEvilTar(t, evil)
	digest, size, err := hashFile(evil)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := layerTag(key)
	if err := w.put(ctx, tag, LayerArtifact, []byte(`{}`), LayerConfig, []*fileBlob{{path: evil, digest: digest, size: size, mediaType: LayerTree}}, nil); err != nil {
		t.Fatal(err)
	}
	r, log := open(t, reg.Host, Options{})
	out := filepath.Join(t.TempDir(), "pulled")
	if _, err := r.PullLayer(ctx, key, out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an escaping tree was not refused: %v", err)
	}
	if !strings.Contains(log.String(), "refused") || !strings.Contains(log.String(), "unsafe archive entry") {
		t.Errorf("not refused for the escape: %s", log)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(out), "escaped")); err == nil {
		t.Error("the tree wrote outside its directory")
	}
}

func writeEvilTar(t *testing.T, path string) {
	t.Helper()
	dir := t.TempDir()
	os.Symlink("..", filepath.Join(dir, "up"))
	var b bytes.Buffer
	// A symlink to .. and a file written through it.
	tw := newTarWriter(&b)
	tw.symlink("up", "..")
	tw.file("up/escaped", "x")
	tw.close()
	if err := os.WriteFile(path, zstdBytes(t, b.Bytes()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSignedEntries: with a keyring, an unsigned entry is refused, an
// entry signed by the key is used, and one signed by another key is
// refused.
func TestSignedEntries(t *testing.T) {
	reg := remotetest.Start(t)
	ctx := context.Background()
	good, bad := newKey(t, "good"), newKey(t, "bad")
	dir, _ := tree(t, "signed")
	meta := []byte(`{"key":"` + key + `"}`)
	keyring := openpgp.EntityList{good.entity}
	for _, tc := range []struct {
		name   string
		signer Signer
		ok     bool
	}{{"unsigned", nil, false}, {"other key", bad, false}, {"the key", good, true}} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := open(t, reg.Host, Options{Push: true, Signer: tc.signer})
			if err := w.PushLayer(ctx, key, dir, meta, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			r, log := open(t, reg.Host, Options{Keyring: keyring})
			_, err := r.PullLayer(ctx, key, filepath.Join(t.TempDir(), "pulled"))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v\n%s", err, log)
			}
			if !tc.ok && (!errors.Is(err, fs.ErrNotExist) || !strings.Contains(log.String(), "refused")) {
				t.Fatalf("accepted (%v)\n%s", err, log)
			}
			// Without a keyring, any entry is read.
			plain, _ := open(t, reg.Host, Options{})
			if _, err := plain.PullLayer(ctx, key, filepath.Join(t.TempDir(), "pulled")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRegistryDown: a registry that cannot be reached is said once and
// is a miss after that (no more attempts); a required one is an error.
func TestRegistryDown(t *testing.T) {
	reg := remotetest.Start(t)
	reg.Stop()
	ctx := context.Background()
	c, log := open(t, reg.Host, Options{Push: true})
	dir, _ := tree(t, "down")
	for i := 0; i < 3; i++ {
		if _, err := c.PullLayer(ctx, key, filepath.Join(t.TempDir(), "p")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("pull %d: %v", i, err)
		}
		if err := c.PushLayer(ctx, key, dir, []byte("{}"), t.TempDir()); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if n := strings.Count(log.String(), "cannot be used"); n != 1 {
		t.Errorf("said %d times:\n%s", n, log)
	}
	if !c.Stats().Down {
		t.Error("not marked down")
	}
	req, _ := open(t, reg.Host, Options{Required: true})
	_, err := req.PullLayer(ctx, key, filepath.Join(t.TempDir(), "p"))
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("required: %v", err)
	}
}

// TestSourceRoundTrip: a source is stored under its sha256 and read back
// by it; the registry refuses bytes that are not that digest's.
func TestSourceRoundTrip(t *testing.T) {
	reg := remotetest.Start(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "hello-1.0.tar.gz")
	os.WriteFile(src, []byte("pretend this is a tarball"), 0o644)
	sum := sha256.Sum256([]byte("pretend this is a tarball"))
	hexSum := hex.EncodeToString(sum[:])
	w, _ := open(t, reg.Host, Options{Push: true})
	if err := w.PushSource(ctx, hexSum, "hello-1.0.tar.gz", src); err != nil {
		t.Fatal(err)
	}
	r, _ := open(t, reg.Host, Options{})
	rc, size, err := r.OpenSource(ctx, hexSum)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "pretend this is a tarball" || size != int64(len(data)) {
		t.Errorf("read %q (%d)", data, size)
	}
	if _, _, err := r.OpenSource(ctx, strings.Repeat("ab", 32)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("miss: %v", err)
	}
	// Bytes that are not the digest's are not stored under it.
	other := filepath.Join(t.TempDir(), "other")
	os.WriteFile(other, []byte("other bytes"), 0o644)
	w2, log := open(t, reg.Host, Options{Push: true})
	w2.PushSource(ctx, strings.Repeat("cd", 32), "x", other)
	if _, err := remote.Head(w2.repo.Tag("source-" + strings.Repeat("cd", 32))); err == nil {
		t.Errorf("the registry took bytes under another digest\n%s", log)
	}
}

func TestParse(t *testing.T) {
	for ref, ok := range map[string]bool{
		"oci://registry.example/team/coach-cache": true,
		"oci://127.0.0.1:5000/coach":              true,
		"registry.example/team/coach-cache":       false,
		"oci://registry.example":                  false,
		"oci://registry.example/team:tag":         false,
		"oci://registry.example/Team":             false,
	} {
		if _, err := Parse(ref); (err == nil) != ok {
			t.Errorf("Parse(%q) = %v", ref, err)
		}
	}
}

// readOnly refuses writes as a registry does for credentials that may
// only read.
type readOnly struct{ next http.RoundTripper }

func (r readOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		body := `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Body: io.NopCloser(strings.NewReader(body)),
			Header: http.Header{"Content-Type": {"application/json"}}, Request: req}, nil
	}
	return r.next.RoundTrip(req)
}

// TestReadOnlyCredentials: a registry that refuses this run's writes
// stops its pushes (said once) but not its pulls.
func TestReadOnlyCredentials(t *testing.T) {
	reg := remotetest.Start(t)
	ctx := context.Background()
	dir, want := tree(t, "ro")
	meta := []byte(`{"key":"` + key + `"}`)
	w, _ := open(t, reg.Host, Options{Push: true})
	if err := w.PushLayer(ctx, key, dir, meta, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ro, log := open(t, reg.Host, Options{Push: true, Transport: readOnly{http.DefaultTransport}})
	other := strings.Replace(key, "1", "4", -1)
	for range 2 {
		if err := ro.PushLayer(ctx, other, dir, meta, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(log.String(), "refuses this run's writes"); n != 1 {
		t.Errorf("said %d times: %s", n, log)
	}
	out := filepath.Join(t.TempDir(), "pulled")
	if _, err := ro.PullLayer(ctx, key, out); err != nil {
		t.Fatalf("pull after a refused push: %v\n%s", err, log)
	}
	if d := digestOf(t, out); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}
	req, _ := open(t, reg.Host, Options{Push: true, Required: true, Transport: readOnly{http.DefaultTransport}})
	var ue *UnavailableError
	if err := req.PushLayer(ctx, other, dir, meta, t.TempDir()); !errors.As(err, &ue) {
		t.Errorf("required: %v", err)
	}
}
