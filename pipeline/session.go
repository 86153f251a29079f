package pipeline

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runners"
)

// session is what a command holds while it runs: the cache (used shared,
// so that gc waits), its events and logger, and what it opened (runner,
// work-tree locks), released by close in the reverse order.
type session struct {
	cache cache.Layout
	sink  event.Sink
	log   *slog.Logger

	mu   sync.Mutex // targets build at once under an engine
	done []func()
}

// atClose runs f when the session closes.
func (s *session) atClose(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = append(s.done, f)
}

// open starts a session on cacheDir (the default cache when empty).
func open(ctx context.Context, cacheDir string, log *slog.Logger, events event.Sink) (*session, error) {
	s := &session{cache: cache.New(cmp.Or(cacheDir, cache.DefaultDir())), sink: event.Serialize(events), log: log}
	if s.log == nil {
		s.log = event.NewLogger(s.sink, slog.LevelInfo)
	}
	release, err := s.cache.Use(ctx, s.log)
	if err != nil {
		return nil, err
	}
	s.atClose(release)
	return s, nil
}

func (s *session) close() {
	s.mu.Lock()
	done := s.done
	s.done = nil
	s.mu.Unlock()
	for i := len(done) - 1; i >= 0; i-- {
		done[i]()
	}
}

// runnerOptions are the runner factory's options for this session.
func (s *session) runnerOptions() runners.Options {
	return runners.Options{CacheDir: s.cache.Dir, Log: s.log, Events: s.sink}
}

// runner is given, or a new one of kind made by make (runners.New or
// runners.NewVerify), closed with the session.
func (s *session) runner(given runner.Runner, make func(string, runners.Options) (runner.Runner, error), kind string, engineLog bool) (runner.Runner, error) {
	if given != nil {
		return given, nil
	}
	o := s.runnerOptions()
	o.EngineLog = engineLog
	r, err := make(kind, o)
	if err != nil {
		return nil, err
	}
	if c, ok := r.(io.Closer); ok {
		s.atClose(func() { c.Close() }) // after the last query, so no output is cut
	}
	return r, nil
}

// fetcher is the session's source fetcher.
func (s *session) fetcher(root string, mirrors []string, offline bool) (*fetch.Fetcher, error) {
	return NewFetcher(FetcherOptions{Root: root, CacheDir: s.cache.Dir, Mirrors: mirrors, Offline: offline, Log: s.log, Events: s.sink})
}

// lockWork takes a work tree's lock until the session closes.
func (s *session) lockWork(ctx context.Context, dir string) error {
	unlock, err := build.LockWork(ctx, dir, s.log)
	if err != nil {
		return err
	}
	s.atClose(unlock)
	return nil
}
