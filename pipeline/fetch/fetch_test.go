package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/resolve"
)

var payload = []byte(strings.Repeat("zlib source bytes\n", 4096))

func sum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sum512(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }

func newFetcher(t *testing.T) *Fetcher {
	t.Helper()
	return &Fetcher{Cache: &Cache{Dir: t.TempDir()}, Root: t.TempDir(), Backoff: time.Millisecond}
}

func urlReq(u string, body []byte) Request {
	return Request{Name: "zlib", Version: "1.3.1", Source: resolve.Source{URL: u, SHA256: sum256(body)}}
}

// cacheFiles lists every file in the cache except lock files.
func cacheFiles(t *testing.T, c *Cache) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(c.Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, "/locks/") {
			out = append(out, strings.TrimPrefix(p, c.Dir))
		}
		return nil
	})
	return out
}

func TestFetchURL(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(payload)
	}))
	defer srv.Close()
	f := newFetcher(t)
	req := urlReq(srv.URL+"/zlib-1.3.1.tar.gz", payload)
	res, err := f.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Hit || res.From != req.Source.URL || res.Bytes != int64(len(payload)) {
		t.Errorf("first fetch = %+v", res)
	}
	if b, _ := os.ReadFile(res.Path); string(b) != string(payload) || res.Path != f.Cache.Path("sha256/"+req.Source.SHA256) {
		t.Errorf("cached file at %s is wrong", res.Path)
	}
	res, err = f.Fetch(context.Background(), req)
	if err != nil || !res.Hit || hits.Load() != 1 {
		t.Errorf("second fetch = %+v, %v, %d requests", res, err, hits.Load())
	}
	// sha512 pins work the same way.
	req512 := Request{Name: "x", Version: "1", Source: resolve.Source{URL: srv.URL + "/x.tgz", SHA512: sum512(payload)}}
	if res, err := f.Fetch(context.Background(), req512); err != nil || res.Path != f.Cache.Path("sha512/"+sum512(payload)) {
		t.Errorf("sha512: %+v %v", res, err)
	}
}

func TestChecksumMismatchLeavesNothing(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("tampered"))
	}))
	defer srv.Close()
	f := newFetcher(t)
	req := urlReq(srv.URL+"/zlib-1.3.1.tar.gz", payload)
	_, err := f.Fetch(context.Background(), req)
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("want a checksum error, got %v", err)
	}
	for _, want := range []string{"zlib@1.3.1", req.Source.URL, "expected " + sum256(payload), "got " + sum256([]byte("tampered"))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("a checksum mismatch was retried: %d requests", hits.Load())
	}
	if files := cacheFiles(t, f.Cache); len(files) > 0 {
		t.Errorf("cache holds %v", files)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write(payload)
	}))
	defer srv.Close()
	f := newFetcher(t)
	if _, err := f.Fetch(context.Background(), urlReq(srv.URL+"/z.tgz", payload)); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 3 {
		t.Errorf("%d requests, want 3 (two failures, one success)", hits.Load())
	}
}

func TestNotFoundIsNotRetried(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	f := newFetcher(t)
	_, err := f.Fetch(context.Background(), urlReq(srv.URL+"/z.tgz", payload))
	if err == nil || !strings.Contains(err.Error(), "not found") || hits.Load() != 1 {
		t.Errorf("err %v after %d requests", err, hits.Load())
	}
}

// TestInterruptedDownloadLeavesNoPartialFile cuts every response short:
// each attempt fails, and nothing stays in the cache.
func TestInterruptedDownloadLeavesNoPartialFile(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
		w.Write(payload[:len(payload)/2])
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	f := newFetcher(t)
	f.Retries = 2
	_, err := f.Fetch(context.Background(), urlReq(srv.URL+"/z.tgz", payload))
	if err == nil {
		t.Fatal("a truncated download succeeded")
	}
	if hits.Load() != 3 {
		t.Errorf("%d attempts, want 3", hits.Load())
	}
	if files := cacheFiles(t, f.Cache); len(files) > 0 {
		t.Errorf("cache holds %v", files)
	}
}

// TestHelperProcess is not a test: the tests below run it as a separate
// coach-like process that fetches one URL.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("COACH_FETCH_HELPER") == "" {
		t.Skip("helper process for the multi-process tests")
	}
	f := &Fetcher{Cache: &Cache{Dir: os.Getenv("COACH_FETCH_CACHE")}}
	body := []byte(os.Getenv("COACH_FETCH_BODY_SHA"))
	req := Request{Name: "zlib", Version: "1.3.1", Source: resolve.Source{URL: os.Getenv("COACH_FETCH_URL"), SHA256: string(body)}}
	res, err := f.Fetch(context.Background(), req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("hit=%v\n", res.Hit)
	os.Exit(0)
}

func helper(t *testing.T, cacheDir, u string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "COACH_FETCH_HELPER=1", "COACH_FETCH_CACHE="+cacheDir, "COACH_FETCH_URL="+u, "COACH_FETCH_BODY_SHA="+sum256(payload))
	return cmd
}

// TestConcurrentProcessesDownloadOnce starts two processes that need the
// same source while the server is slow: one downloads, the other waits for
// the lock and finds it in the cache. Both succeed.
func TestConcurrentProcessesDownloadOnce(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(700 * time.Millisecond)
		w.Write(payload)
	}))
	defer srv.Close()
	dir := t.TempDir()
	a, b := helper(t, dir, srv.URL+"/z.tgz"), helper(t, dir, srv.URL+"/z.tgz")
	outA, outB := &strings.Builder{}, &strings.Builder{}
	a.Stdout, b.Stdout = outA, outB
	a.Stderr, b.Stderr = os.Stderr, os.Stderr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	errA, errB := a.Wait(), b.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("processes failed: %v %v", errA, errB)
	}
	if hits.Load() != 1 {
		t.Errorf("%d downloads, want 1", hits.Load())
	}
	if got := outA.String() + outB.String(); strings.Count(got, "hit=true") != 1 || strings.Count(got, "hit=false") != 1 {
		t.Errorf("outputs: %q", got)
	}
	if b, _ := os.ReadFile((&Cache{Dir: dir}).Path("sha256/" + sum256(payload))); string(b) != string(payload) {
		t.Error("cache entry is wrong")
	}
}

// TestKilledDownloadLeavesNothing kills a fetching process with SIGKILL in
// the middle of the body, then checks the cache and fetches again.
func TestKilledDownloadLeavesNothing(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
		w.Write(payload[:len(payload)/2])
		w.(http.Flusher).Flush()
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	cmd := helper(t, dir, srv.URL+"/z.tgz")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the helper never started downloading")
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	c := &Cache{Dir: dir}
	if files := cacheFiles(t, c); len(files) > 0 {
		t.Errorf("a killed download left %v", files)
	}
}

func TestMirrors(t *testing.T) {
	mirror := t.TempDir()
	os.WriteFile(filepath.Join(mirror, "zlib-1.3.1.tar.gz"), payload, 0o644)
	os.MkdirAll(filepath.Join(mirror, "sha256"), 0o755)
	other := []byte("another project's zlib-1.3.1.tar.gz")
	os.WriteFile(filepath.Join(mirror, "sha256", sum256(other)), other, 0o644)
	upstream := "https://upstream.invalid/zlib-1.3.1.tar.gz"

	t.Run("by file name", func(t *testing.T) {
		f := newFetcher(t)
		f.Mirrors = []string{"file://" + mirror}
		res, err := f.Fetch(context.Background(), urlReq(upstream, payload))
		if err != nil || res.From != "file://"+mirror+"/zlib-1.3.1.tar.gz" {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("by checksum when the name holds other bytes", func(t *testing.T) {
		f := newFetcher(t)
		f.Mirrors = []string{"file://" + mirror}
		res, err := f.Fetch(context.Background(), Request{Name: "zlib", Version: "9", Source: resolve.Source{URL: upstream, SHA256: sum256(other)}})
		if err != nil || !strings.HasSuffix(res.From, "/sha256/"+sum256(other)) {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("http mirror, then upstream", func(t *testing.T) {
		var mirrorHits, upHits atomic.Int32
		hm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mirrorHits.Add(1)
			http.NotFound(w, r)
		}))
		defer hm.Close()
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			upHits.Add(1)
			w.Write(payload)
		}))
		defer up.Close()
		f := newFetcher(t)
		f.Mirrors = []string{hm.URL + "/mirror/"}
		res, err := f.Fetch(context.Background(), urlReq(up.URL+"/zlib-1.3.1.tar.gz", payload))
		if err != nil || res.From != up.URL+"/zlib-1.3.1.tar.gz" || mirrorHits.Load() != 2 || upHits.Load() != 1 {
			t.Fatalf("%+v %v mirror=%d upstream=%d", res, err, mirrorHits.Load(), upHits.Load())
		}
	})
	t.Run("offline uses file mirrors and names every missing source", func(t *testing.T) {
		f := newFetcher(t)
		f.Offline = true
		f.Mirrors = []string{"file://" + mirror}
		reqs := []Request{
			urlReq(upstream, payload),
			{Name: "curl", Version: "8.5.0", Source: resolve.Source{URL: "https://curl.se/download/curl-8.5.0.tar.xz", SHA256: strings.Repeat("a", 64)}},
			{Name: "pcre2", Version: "10.42", Source: resolve.Source{URL: "https://example.com/pcre2-10.42.tar.bz2", SHA256: strings.Repeat("b", 64)}},
		}
		start := time.Now()
		res, err := f.FetchAll(context.Background(), reqs, 2)
		var me *MissingError
		if !errors.As(err, &me) || len(me.Missing) != 2 {
			t.Fatalf("want two missing sources, got %v", err)
		}
		for _, want := range []string{"curl@8.5.0: https://curl.se/download/curl-8.5.0.tar.xz", "pcre2@10.42: https://example.com/pcre2-10.42.tar.bz2"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		if res[0] == nil || time.Since(start) > 2*time.Second {
			t.Errorf("zlib from the file mirror: %+v after %v", res[0], time.Since(start))
		}
	})
}

func TestPathSource(t *testing.T) {
	f := newFetcher(t)
	os.MkdirAll(filepath.Join(f.Root, "software", "hello"), 0o755)
	res, err := f.Fetch(context.Background(), Request{Name: "hello", Version: "1.0.0", Source: resolve.Source{Path: "hello", Tree: "sha256:x"}})
	if err != nil || res.Path != filepath.Join(f.Root, "software", "hello") || res.From != "repository" {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := f.Fetch(context.Background(), Request{Name: "gone", Version: "1", Source: resolve.Source{Path: "gone"}}); err == nil {
		t.Error("a missing path source was fetched")
	}
}

func TestPopulateMissingGC(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.URL.Path))
	}))
	defer srv.Close()
	reqA := Request{Name: "a", Version: "1", Source: resolve.Source{URL: srv.URL + "/a-1.tgz", SHA256: sum256([]byte("/a-1.tgz"))}}
	reqB := Request{Name: "b", Version: "2", Source: resolve.Source{URL: srv.URL + "/b-2.tgz", SHA256: sum256([]byte("/b-2.tgz"))}}
	f := newFetcher(t)
	if m := f.Missing([]Request{reqA, reqB}); len(m) != 2 {
		t.Fatalf("missing = %v", m)
	}
	dir := t.TempDir()
	if _, err := f.Populate(context.Background(), []Request{reqA, reqB}, dir, 2); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a-1.tgz", "b-2.tgz", "sha256/" + reqA.Source.SHA256} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("mirror lacks %s", p)
		}
	}
	if m := f.Missing([]Request{reqA, reqB}); len(m) != 0 {
		t.Errorf("missing after populate = %v", m)
	}
	// A new cache, offline, served by the populated mirror.
	g := newFetcher(t)
	g.Offline, g.Mirrors = true, []string{"file://" + dir}
	if _, err := g.FetchAll(context.Background(), []Request{reqA, reqB}, 2); err != nil {
		t.Fatal(err)
	}
	// What cache gc (pipeline.GC) decides by: the cache's entries, and
	// which of them the requests still need.
	entries, err := f.Cache.Entries()
	if want := []string{Key(reqA.Source), Key(reqB.Source)}; err != nil || !slices.Equal(entries, slices.Sorted(slices.Values(want))) {
		t.Fatalf("entries %v %v, want %v", entries, err, want)
	}
	if ref := Referenced([]Request{reqA}); len(ref) != 1 || !ref[Key(reqA.Source)] || ref[Key(reqB.Source)] {
		t.Fatalf("referenced by a: %v", ref)
	}
	git := Request{Name: "g", Version: "1", Source: resolve.Source{Git: "https://example.com/g.git", Commit: strings.Repeat("a", 40)}}
	if ref := Referenced([]Request{git}); len(ref) != 2 || !ref[Key(git.Source)] || !ref[BundleKey(git.Source.Commit)] {
		t.Fatalf("referenced by a git source: %v", ref)
	}
}

// TestSweepPartials covers filesystems without O_TMPFILE: a named partial
// of a dead process is removed by the next fetch; a live one is kept.
func TestSweepPartials(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	c.init()
	dead := exec.Command("true")
	dead.Run()
	stale := filepath.Join(c.Dir, "tmp", fmt.Sprintf("partial-%d-123", dead.Process.Pid))
	live := filepath.Join(c.Dir, "tmp", fmt.Sprintf("partial-%d-456", os.Getppid()))
	os.WriteFile(stale, []byte("half"), 0o644)
	os.WriteFile(live, []byte("half"), 0o644)
	if n := c.SweepPartials(); n != 1 {
		t.Errorf("swept %d", n)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale partial kept")
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("live partial removed")
	}
}
