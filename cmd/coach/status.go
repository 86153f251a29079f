package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/build"
)

// buildStatus shows each component's state: a live block of lines on a
// terminal (redrawn in place), nothing extra elsewhere (the builder's log
// lines say it all).
type buildStatus struct {
	a     *app
	live  bool
	mu    sync.Mutex
	order []string
	state map[string]build.Event
	since map[string]time.Time
	drawn int
}

func newBuildStatus(a *app) *buildStatus {
	return &buildStatus{a: a, live: isTerminal(a.stderr) && !a.json, state: map[string]build.Event{}, since: map[string]time.Time{}}
}

func (s *buildStatus) event(e build.Event) {
	if !s.live {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := e.Target + " " + e.Component
	if _, ok := s.state[key]; !ok {
		s.order = append(s.order, key)
	}
	if e.State != "step" || s.state[key].State != "step" {
		s.since[key] = e.Time
	}
	s.state[key] = e
	s.draw()
}

func (s *buildStatus) draw() {
	var b strings.Builder
	if s.drawn > 0 {
		fmt.Fprintf(&b, "\033[%dA", s.drawn)
	}
	for _, key := range s.order {
		e := s.state[key]
		what := e.State
		if e.State == "step" {
			what = "building: " + e.Step
		}
		if e.State == "building" || e.State == "step" {
			what += fmt.Sprintf(" (%ds)", int(time.Since(s.since[key]).Seconds()))
		}
		fmt.Fprintf(&b, "\r\033[K%-12s %-14s %s\n", e.Target, e.Component, what)
	}
	s.drawn = len(s.order)
	fmt.Fprint(s.a.stderr, b.String())
}

func (s *buildStatus) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order, s.state, s.drawn = nil, map[string]build.Event{}, 0
}
