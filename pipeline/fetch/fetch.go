// Package fetch brings pinned sources into the content-addressed cache:
// url sources (http, https, file) verified by sha256 or sha512 while they
// stream, git sources pinned to a commit, and path sources kept in the
// repository. Mirrors are tried before the upstream URL, transient HTTP
// failures are retried with backoff, and a checksum mismatch never is.
package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/resolve"
)

// Request is one source to fetch.
type Request struct {
	Name    string
	Version string
	Source  resolve.Source
}

func (r Request) String() string { return r.Name + "@" + r.Version }

// FileName is the download's base name, used for mirror lookups and for
// extracting plain files.
func (r Request) FileName() string {
	switch {
	case r.Source.URL != "":
		u, err := url.Parse(r.Source.URL)
		if err == nil && path.Base(u.Path) != "/" && path.Base(u.Path) != "." {
			return path.Base(u.Path)
		}
		return r.Name + "-" + r.Version
	case r.Source.Git != "":
		return r.Source.Commit + ".tar"
	}
	return filepath.Base(r.Source.Path)
}

// Result says where a fetched source is.
type Result struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	// Path is the cache file (url, git) or the repository path (path).
	Path string `json:"path"`
	// Hit is true when nothing had to be downloaded.
	Hit bool `json:"cache_hit"`
	// From is where the bytes came from: a mirror or upstream URL, "cache",
	// or "repository".
	From  string `json:"from"`
	Bytes int64  `json:"bytes"`
	// Algo and Hex are what the cache file's bytes hash to (url: the
	// pinned checksum; git: the digest recorded when the tar was made),
	// for whoever reads it to check; empty for path sources.
	Algo string `json:"-"`
	Hex  string `json:"-"`
}

// Progress reports a download under way.
type Progress struct {
	Request Request
	From    string
	Bytes   int64
	Total   int64 // -1 if unknown
	Done    bool
}

// Fetcher fetches sources into a Cache.
type Fetcher struct {
	Cache *Cache
	// Root is the repository root; path sources are under Root/software.
	Root string
	// Mirrors are file:// or http(s):// bases tried, in order, before the
	// upstream URL: first <base>/<file name>, then <base>/<algo>/<hex>.
	Mirrors []string
	// Offline forbids the network: only the cache, the repository and
	// file:// locations are used.
	Offline bool
	Client  *http.Client
	// Retries is how many times a transient failure is retried per
	// location (default 3); Backoff is the first wait, doubled each time
	// (default 500ms).
	Retries  int
	Backoff  time.Duration
	Progress func(Progress)
	Log      *slog.Logger
	// Archives expands mirror://name URLs; nil means the environment and
	// the host's apt sources (mirror.Host).
	Archives *mirror.Set
	// Verify hashes a cached entry before it is reported a hit (coach
	// fetch does; a build hashes the bytes as it unpacks them); a corrupt
	// one is evicted, said so, and fetched again.
	Verify bool
	// Remote, when set, is a source cache shared between machines (the
	// remote cache): tried first for a source pinned by sha256, and
	// given each source downloaded elsewhere when it takes pushes.
	Remote Remote
}

// Remote is a source cache shared between machines (pipeline/remote
// keeps one in an OCI registry), by sha256.
type Remote interface {
	// OpenSource opens the source whose sha256 is hexSum, and says its
	// size. A miss (and a registry that cannot be reached) is
	// fs.ErrNotExist. The fetcher hashes what it reads, as for any
	// location.
	OpenSource(ctx context.Context, hexSum string) (io.ReadCloser, int64, error)
	// PushSource stores the file at path, unless the remote has it.
	PushSource(ctx context.Context, hexSum, fileName, path string) error
	// Pushes reports whether this run writes to the remote.
	Pushes() bool
	String() string
}

// remoteScheme names the remote cache as a location: remote-cache:<hex>.
const remoteScheme = "remote-cache"

// Share gives a fetched source to the remote cache, when it takes
// pushes; only a url source pinned by sha256 is shared.
func (f *Fetcher) Share(ctx context.Context, res *Result) error {
	if f.Remote == nil || !f.Remote.Pushes() || res == nil || res.Kind != "url" || res.Algo != "sha256" || res.Hex == "" {
		return nil
	}
	return f.Remote.PushSource(ctx, res.Hex, res.Name+"-"+res.Version, res.Path)
}

// ReportTo sends the fetcher's progress to events as Download events.
func (f *Fetcher) ReportTo(events event.Sink) {
	if events == nil {
		return
	}
	f.Progress = func(p Progress) {
		events.Emit(event.Event{Kind: event.Download, Component: p.Request.String(), Bytes: p.Bytes, Total: p.Total, Done: p.Done, Message: p.From})
	}
}

// CorruptError is a cache entry whose bytes are not what it is named for,
// which could not be fetched again (offline, or gone upstream).
type CorruptError struct {
	Entry   string // e.g. sources/sha256/<hex>
	Message string
	Err     error
}

func (e *CorruptError) Error() string {
	return e.Message + "; fetching it again failed: " + e.Err.Error()
}
func (e *CorruptError) Unwrap() error { return e.Err }

// ChecksumError is a download whose bytes are not the pinned ones.
type ChecksumError struct {
	Request  Request
	URL      string
	Algo     string
	Expected string
	Actual   string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("fetch %s from %s: %s mismatch: expected %s, got %s", e.Request, e.URL, e.Algo, e.Expected, e.Actual)
}

// MissingError lists every source that is not available offline.
type MissingError struct{ Missing []Request }

func (e *MissingError) Error() string {
	lines := make([]string, len(e.Missing))
	for i, r := range e.Missing {
		lines[i] = fmt.Sprintf("\t%s: %s", r, describe(r.Source))
	}
	return fmt.Sprintf("offline: %d sources are not in the cache or a file:// mirror (run coach fetch, or coach cache populate, while online):\n%s", len(e.Missing), strings.Join(lines, "\n"))
}

func describe(s resolve.Source) string {
	if s.Git != "" {
		return s.Git + " @ " + s.Commit
	}
	return s.URL
}

// notFound is a location that does not have the file; the next one is tried.
type notFound struct{ loc string }

func (e *notFound) Error() string { return e.loc + ": not found" }

// transient is a failure worth retrying: a 5xx or 429, a reset connection,
// a body cut short.
type transient struct{ err error }

func (e *transient) Error() string { return e.err.Error() }
func (e *transient) Unwrap() error { return e.err }

func (f *Fetcher) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return http.DefaultClient
}

// Fetch brings one source into the cache and returns where it is.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (*Result, error) {
	res := &Result{Name: req.Name, Version: req.Version, Kind: req.Source.Kind()}
	switch res.Kind {
	case "path":
		p := filepath.Join(req.Source.Files(f.Root), filepath.FromSlash(req.Source.Path))
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("fetch %s: path source: %w", req, err)
		}
		res.Path, res.Hit, res.From = p, true, "repository"
		return res, nil
	case "url", "git":
	default:
		return nil, fmt.Errorf("fetch %s: no source", req)
	}
	if err := f.Cache.init(); err != nil {
		return nil, fmt.Errorf("fetch %s: cache: %w", req, err)
	}
	key := Key(req.Source)
	if key == "" {
		return nil, fmt.Errorf("fetch %s from %s: the source is not pinned by a checksum or commit", req, describe(req.Source))
	}
	res.Path = f.Cache.Path(key)
	if st, err := os.Stat(res.Path); err == nil && f.Cache.digest(req.Source, res) {
		if !f.Verify {
			res.Hit, res.From, res.Bytes = true, "cache", st.Size()
			return res, nil
		}
		got, err := f.Cache.Hash(ctx, key, res.Algo)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", req, err)
		}
		if got == res.Hex {
			res.Hit, res.From, res.Bytes = true, "cache", st.Size()
			return res, nil
		}
		f.log().Warn(fmt.Sprintf("cache entry sources/%s is corrupt (its content hashes to %s:%s); fetching it again", key, res.Algo, got), "component", req.String())
		if err := f.Cache.Evict(ctx, key); err != nil {
			return nil, err
		}
	}
	unlock, err := f.Cache.lock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", req, err)
	}
	defer unlock()
	// Another process may have fetched it while this one waited.
	if st, err := os.Stat(res.Path); err == nil && f.Cache.digest(req.Source, res) {
		res.Hit, res.From, res.Bytes = true, "cache", st.Size()
		return res, nil
	}
	// A git tar without its recorded digest (made by an older coach)
	// cannot be checked: it is made again.
	f.Cache.remove(key)
	f.Cache.SweepPartials()
	if res.Kind == "git" {
		return f.fetchGit(ctx, req, key, res)
	}
	return f.fetchURL(ctx, req, key, res)
}

// locations lists where a url source may be found, mirrors first, and the
// upstream URL with its package archive (mirror://name) expanded. An archive
// that is not configured here is reported as the last location's failure.
func (f *Fetcher) locations(req Request, key string) (locs []string, upstream string, err error) {
	for _, m := range f.Mirrors {
		base := strings.TrimSuffix(m, "/")
		locs = append(locs, base+"/"+url.PathEscape(req.FileName()), base+"/"+key)
	}
	if req.Source.URL != "" {
		archives := f.Archives
		if archives == nil {
			archives = mirror.Host()
		}
		if upstream, err = archives.Expand(req.Source.URL); err == nil {
			locs = append(locs, upstream)
		}
	}
	return locs, upstream, err
}

func (f *Fetcher) fetchURL(ctx context.Context, req Request, key string, res *Result) (*Result, error) {
	algo, want := "sha256", req.Source.SHA256
	if want == "" {
		algo, want = "sha512", req.Source.SHA512
	}
	p, err := f.Cache.create()
	if err != nil {
		return nil, fmt.Errorf("fetch %s: cache: %w", req, err)
	}
	defer p.discard()
	var tried []string
	locs, upstream, archiveErr := f.locations(req, key)
	if f.Remote != nil && algo == "sha256" {
		locs = append([]string{remoteScheme + ":" + want}, locs...)
	}
	for _, loc := range locs {
		if f.Offline && !strings.HasPrefix(loc, "file:") {
			continue
		}
		n, err := f.download(ctx, req, loc, algo, want, p)
		if err == nil {
			if err := f.Cache.commit(p, key); err != nil {
				return nil, fmt.Errorf("fetch %s: cache: %w", req, err)
			}
			res.From, res.Bytes, res.Algo, res.Hex = loc, n, algo, want
			if strings.HasPrefix(loc, remoteScheme+":") {
				res.From = f.Remote.String()
			} else if err := f.Share(ctx, res); err != nil {
				return nil, err
			}
			f.log().Info("fetched", "component", req.String(), "from", res.From, "bytes", n)
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetch %s: %w", req, ctx.Err())
		}
		var nf *notFound
		if errors.As(err, &nf) {
			tried = append(tried, loc+": not found")
			continue
		}
		var ce *ChecksumError
		if errors.As(err, &ce) && loc == upstream {
			return nil, err
		}
		// A mirror with the wrong bytes under the file name (two projects
		// can share one) or a failing mirror: say so and go on.
		f.log().Warn("source location failed", "component", req.String(), "from", loc, "err", err)
		tried = append(tried, err.Error())
		if err := p.reset(); err != nil {
			return nil, err
		}
	}
	if f.Offline {
		return nil, &MissingError{Missing: []Request{req}}
	}
	if archiveErr != nil {
		tried = append(tried, req.Source.URL+": "+archiveErr.Error())
	}
	return nil, fmt.Errorf("fetch %s from %s: every location failed:\n\t%s", req, req.Source.URL, strings.Join(tried, "\n\t"))
}

// download copies loc into p, hashing as it streams, retrying transient
// failures. It returns the byte count, or a *ChecksumError, *notFound or
// other error.
func (f *Fetcher) download(ctx context.Context, req Request, loc, algo, want string, p *pending) (int64, error) {
	retries := f.Retries
	if retries == 0 {
		retries = 3
	}
	wait := f.Backoff
	if wait == 0 {
		wait = 500 * time.Millisecond
	}
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			f.log().Warn("retrying download", "component", req.String(), "from", loc, "attempt", attempt+1, "err", last)
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
			if err := p.reset(); err != nil {
				return 0, err
			}
		}
		n, err := f.downloadOnce(ctx, req, loc, algo, want, p)
		var tr *transient
		if err == nil || !errors.As(err, &tr) {
			return n, err
		}
		last = err
	}
	return 0, fmt.Errorf("fetch %s from %s: gave up after %d attempts: %w", req, loc, retries+1, last)
}

func newHash(algo string) hash.Hash {
	if algo == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

func (f *Fetcher) downloadOnce(ctx context.Context, req Request, loc, algo, want string, p *pending) (int64, error) {
	body, total, err := f.open(ctx, loc)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	h := newHash(algo)
	pr := &progressReader{r: &Bounded{Ctx: ctx, R: body, Limit: MaxSourceBytes, Name: loc}, report: f.Progress, ev: Progress{Request: req, From: loc, Total: total}}
	n, err := io.Copy(io.MultiWriter(p, h), pr)
	pr.done()
	var big *TooLargeError
	if errors.As(err, &big) {
		return n, err
	}
	if err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		return n, &transient{fmt.Errorf("fetch %s from %s: %w", req, loc, err)}
	}
	if total >= 0 && n != total {
		return n, &transient{fmt.Errorf("fetch %s from %s: got %d of %d bytes", req, loc, n, total)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return n, &ChecksumError{Request: req, URL: loc, Algo: algo, Expected: want, Actual: got}
	}
	return n, nil
}

// open starts reading a location.
func (f *Fetcher) open(ctx context.Context, loc string) (io.ReadCloser, int64, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return nil, 0, err
	}
	switch u.Scheme {
	case remoteScheme:
		rc, size, err := f.Remote.OpenSource(ctx, u.Opaque)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, &notFound{loc}
		}
		return rc, size, err
	case "file":
		fh, st, err := OpenRegular(u.Path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, confine.ErrNotRegular) {
			return nil, 0, &notFound{loc}
		}
		if err != nil {
			return nil, 0, err
		}
		return fh, st.Size(), nil
	case "http", "https":
		hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
		if err != nil {
			return nil, 0, err
		}
		hreq.Header.Set("User-Agent", "coach")
		resp, err := f.client().Do(hreq)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			var ne net.Error
			var oe *net.OpError
			if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, 0, &transient{err}
			}
			return nil, 0, err
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return resp.Body, resp.ContentLength, nil
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			resp.Body.Close()
			return nil, 0, &notFound{loc}
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
			resp.Body.Close()
			return nil, 0, &transient{fmt.Errorf("%s: %s", loc, resp.Status)}
		default:
			resp.Body.Close()
			return nil, 0, fmt.Errorf("%s: %s", loc, resp.Status)
		}
	}
	return nil, 0, fmt.Errorf("%s: unsupported URL scheme %q", loc, u.Scheme)
}

// MaxSourceBytes bounds a source archive coach downloads or reads: the
// largest real release tarballs (a browser's, a toolchain's) are a few
// GiB, so 8 GiB is far above them, and a URL that never ends (a device, a
// misbehaving server) stops before it fills a disk. A variable for tests.
var MaxSourceBytes int64 = 8 << 30

// TooLargeError is a source that went past MaxSourceBytes.
type TooLargeError struct {
	Name  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: more than %d bytes; coach stops reading a source there (MaxSourceBytes)", e.Name, e.Limit)
}

// OpenRegular opens a local file a source or a file:// URL names. It is
// opened without blocking (a FIFO cannot hang coach) and refused unless
// it is a regular file: /dev/zero or a FIFO is not an archive.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, nil, fmt.Errorf("%s %w", path, confine.ErrNotRegular)
	}
	return fh, st, nil
}

// Bounded reads R, failing when Ctx ends or more than Limit bytes come.
type Bounded struct {
	Ctx   context.Context
	R     io.Reader
	Limit int64
	Name  string
	n     int64
}

func (b *Bounded) Read(p []byte) (int, error) {
	if err := b.Ctx.Err(); err != nil {
		return 0, err
	}
	n, err := b.R.Read(p)
	b.n += int64(n)
	if b.n > b.Limit {
		return n, &TooLargeError{Name: b.Name, Limit: b.Limit}
	}
	return n, err
}

type progressReader struct {
	r      io.Reader
	report func(Progress)
	ev     Progress
	last   time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.ev.Bytes += int64(n)
	if p.report != nil && time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		p.report(p.ev)
	}
	return n, err
}

func (p *progressReader) done() {
	if p.report != nil {
		p.ev.Done = true
		p.report(p.ev)
	}
}

// FetchAll fetches every request, up to jobs at a time. It reports every
// failure, not only the first; offline, it names every missing source.
func (f *Fetcher) FetchAll(ctx context.Context, reqs []Request, jobs int) ([]*Result, error) {
	if jobs < 1 {
		jobs = 1
	}
	results := make([]*Result, len(reqs))
	errs := make([]error, len(reqs))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = f.Fetch(ctx, r)
		})
	}
	wg.Wait()
	var missing []Request
	var other []error
	for _, err := range errs {
		var me *MissingError
		switch {
		case err == nil:
		case errors.As(err, &me):
			missing = append(missing, me.Missing...)
		default:
			other = append(other, err)
		}
	}
	if len(missing) > 0 {
		other = append([]error{&MissingError{Missing: missing}}, other...)
	}
	return results, errors.Join(other...)
}

// ListedRequests turns listed versions into fetch requests.
func ListedRequests(ls []resolve.Listed) []Request {
	out := make([]Request, len(ls))
	for i, l := range ls {
		out[i] = Request{Name: l.Name, Version: l.Version, Source: l.Source}
	}
	return out
}

// Requests turns a resolution into fetch requests.
func Requests(res *resolve.Resolution) []Request {
	out := make([]Request, len(res.Components))
	for i, c := range res.Components {
		out[i] = Request{Name: c.Name, Version: c.Version, Source: c.Source}
	}
	return out
}
