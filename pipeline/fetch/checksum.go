package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/mirror"
)

// Checksum downloads a release archive (http, https or file URL) and
// returns its sha256 and size, for a definition that pins it. Nothing is
// kept: the build fetches it again, verified against this sum.
func Checksum(ctx context.Context, rawURL string) (string, int64, error) {
	return download(ctx, rawURL, io.Discard)
}

// download copies what rawURL serves (bounded) to w and returns its
// sha256 and size.
func download(ctx context.Context, rawURL string, w io.Writer) (string, int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", 0, failure.Request(fmt.Errorf("--url %q: %w", rawURL, err))
	}
	var body io.ReadCloser
	switch u.Scheme {
	case "file":
		f, _, err := OpenRegular(u.Path)
		if err != nil {
			return "", 0, failure.Stage("fetch", fmt.Errorf("checksum %s: %w", rawURL, err))
		}
		body = f
	case "http", "https":
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return "", 0, failure.Request(err)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
		if err != nil {
			return "", 0, failure.Stage("fetch", fmt.Errorf("checksum %s: %w", rawURL, err))
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return "", 0, failure.Stage("fetch", fmt.Errorf("checksum %s: %s", rawURL, resp.Status))
		}
		body = resp.Body
	default:
		return "", 0, failure.Request(fmt.Errorf("--url %q: give an http, https or file URL", rawURL))
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, w), &Bounded{Ctx: ctx, R: body, Limit: MaxSourceBytes, Name: rawURL})
	if ctx.Err() != nil {
		return "", 0, failure.Interrupted("checksum %s", rawURL)
	}
	if err != nil {
		return "", 0, failure.Stage("fetch", fmt.Errorf("checksum %s: %w", rawURL, err))
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ChecksumFrom downloads a file from the source mirrors, then from its
// upstream URL (with {{mirror}} archives expanded), and returns its
// sha256, size and where it came from (coach bump).
func ChecksumFrom(ctx context.Context, raw string, mirrors []string) (string, int64, string, error) {
	return DownloadFrom(ctx, raw, mirrors, nil)
}

// DownloadFrom is ChecksumFrom that also keeps the bytes, in f (emptied
// before each location is tried); nil keeps nothing (coach new software
// reads the archive it pins).
func DownloadFrom(ctx context.Context, raw string, mirrors []string, f *os.File) (string, int64, string, error) {
	rendered, err := mirror.Render(raw)
	if err != nil {
		return "", 0, "", failure.Request(err)
	}
	var locs []string
	name := path.Base(rendered)
	if u, err := url.Parse(rendered); err == nil {
		name = path.Base(u.Path)
	}
	for _, m := range mirrors {
		locs = append(locs, strings.TrimSuffix(m, "/")+"/"+url.PathEscape(name))
	}
	upstream, err := mirror.Host().Expand(rendered)
	if err == nil {
		locs = append(locs, upstream)
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, loc := range locs {
		var w io.Writer = io.Discard
		if f != nil {
			if err := f.Truncate(0); err != nil {
				return "", 0, "", err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return "", 0, "", err
			}
			w = f
		}
		sum, n, cerr := download(ctx, loc, w)
		if cerr == nil {
			return sum, n, loc, nil
		}
		errs = append(errs, cerr)
	}
	return "", 0, "", failure.Stage(event.StageFetch, fmt.Errorf("fetch %s: %w", raw, errors.Join(errs...)))
}
