package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/coach-build/coach/pipeline/fetch"
)

// isTerminal reports whether w is a terminal, and CI is not set: on a
// terminal coach redraws live status lines, elsewhere it writes plain logs.
func isTerminal(w io.Writer) bool {
	if os.Getenv("CI") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// downloads renders fetch progress: one redrawn line on a terminal, or a log
// line at each quarter of a large download elsewhere.
type downloads struct {
	a      *app
	live   bool
	mu     sync.Mutex
	active map[string]fetch.Progress
	logged map[string]int
	last   time.Time
}

func newDownloads(a *app) *downloads {
	return &downloads{a: a, live: isTerminal(a.stderr) && !a.json, active: map[string]fetch.Progress{}, logged: map[string]int{}}
}

const bigDownload = 1 << 20

func (d *downloads) report(p fetch.Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := p.Request.String()
	if p.Done {
		delete(d.active, name)
	} else {
		d.active[name] = p
	}
	if !d.live {
		if p.Total < bigDownload {
			return
		}
		q := int(4 * p.Bytes / p.Total)
		if q > d.logged[name] && q < 4 {
			d.logged[name] = q
			d.a.log.Info("downloading", "component", name, "percent", 25*q, "bytes", p.Bytes, "total", p.Total)
		}
		return
	}
	if time.Since(d.last) < 100*time.Millisecond && !p.Done {
		return
	}
	d.last = time.Now()
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(d.active)) {
		ap := d.active[n]
		if ap.Total > 0 {
			parts = append(parts, fmt.Sprintf("%s %d%% of %s", n, 100*ap.Bytes/ap.Total, mib(ap.Total)))
		} else {
			parts = append(parts, fmt.Sprintf("%s %s", n, mib(ap.Bytes)))
		}
	}
	line := "fetching: " + strings.Join(parts, ", ")
	if len(parts) == 0 {
		line = ""
	}
	fmt.Fprintf(d.a.stderr, "\r\033[K%s", line)
}

func (d *downloads) finish() {
	if d.live {
		fmt.Fprint(d.a.stderr, "\r\033[K")
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
