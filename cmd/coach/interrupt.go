package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coach-build/coach/pipeline/failure"
)

// gracePeriod is how long a command has, after SIGINT or SIGTERM, to stop
// by itself (kill its sandboxes, remove its scratch) before coach exits
// anyway: every command stops within 2 s of the signal, with exit code
// 130. What a forced exit leaves (a temporary layer, a scratch root) is
// named after this process, and the next run sweeps it.
const gracePeriod = 1500 * time.Millisecond

// interrupts turns SIGINT and SIGTERM into the cancellation of the run's
// context, says at once that coach is stopping, and exits with 130 when
// the command has not returned within gracePeriod or a second signal
// comes.
type interrupts struct {
	ctx    context.Context
	cancel context.CancelFunc
	sigs   chan os.Signal
	done   chan struct{}
	mu     sync.Mutex
	got    bool
	exit   func(code int) // os.Exit; tests replace it
}

func newInterrupts(a *app) *interrupts {
	in := &interrupts{sigs: make(chan os.Signal, 2), done: make(chan struct{}), exit: os.Exit}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	signal.Notify(in.sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-in.sigs:
		case <-in.done:
			return
		}
		in.mu.Lock()
		in.got = true
		in.mu.Unlock()
		in.cancel()
		if a.log != nil {
			a.log.Warn("interrupted: stopping (a second signal exits at once)")
		}
		select {
		case <-in.done:
		case <-in.sigs:
			a.forceExit(in, "interrupted twice")
		case <-time.After(gracePeriod):
			a.forceExit(in, "interrupted, and the command did not stop in time")
		}
	}()
	return in
}

// interrupted reports whether a signal came.
func (in *interrupts) interrupted() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.got
}

// stop ends the watch: the command returned.
func (in *interrupts) stop() {
	signal.Stop(in.sigs)
	close(in.done)
	in.cancel()
}

// forceExit prints what the run owes (the one JSON document) and exits 130.
func (a *app) forceExit(in *interrupts, why string) {
	err := pipelineInterrupted(why)
	a.finish(err, exitInterrupted)
	in.exit(exitInterrupted)
}

func pipelineInterrupted(why string) error {
	return errors.Join(errors.New(why), failure.ErrInterrupted)
}

// signalContext is the run's context, cancelled by SIGINT or SIGTERM, and
// at --timeout.
func (a *app) signalContext() (context.Context, context.CancelFunc) {
	if a.timeout <= 0 {
		return context.WithCancel(a.interrupts.ctx)
	}
	ctx, cancel := context.WithTimeoutCause(a.interrupts.ctx, a.timeout, errTimedOut)
	a.cmdCtxMu.Lock()
	a.cmdCtxs = append(a.cmdCtxs, ctx)
	a.cmdCtxMu.Unlock()
	return ctx, cancel
}
