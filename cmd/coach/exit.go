package main

import (
	"errors"
	"syscall"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
)

// Exit codes. They are part of coach's interface: see docs/cli.md.
const (
	exitOK          = 0
	exitFailure     = 1 // anything not covered below (I/O, internal error)
	exitUsage       = 2 // bad command line
	exitInvalid     = 3 // definitions are invalid (load or plan)
	exitResolve     = 4 // no version satisfies a constraint, or the lock is stale
	exitFetch       = 5 // a source could not be fetched or verified
	exitBuild       = 6 // a build step failed
	exitHealth      = 7 // the linkage health check failed
	exitPackage     = 8 // packaging failed
	exitVerify      = 9 // a package failed verification
	exitInterrupted = 130
)

// exitError carries an exit code with an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageError marks a bad command line.
func usageError(err error) error { return withCode(exitUsage, err) }

var stageCodes = map[string]int{
	event.StageLoad:    exitInvalid,
	event.StageResolve: exitResolve,
	event.StagePlan:    exitInvalid,
	event.StageFetch:   exitFetch,
	event.StageBuild:   exitBuild,
	event.StageHealth:  exitHealth,
	event.StagePackage: exitPackage,
	event.StageVerify:  exitVerify,
}

// exitCode picks the exit code for an error: an explicit one, else the
// failed stage's, else 1.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var se *shellExit
	if errors.As(err, &se) {
		return se.code
	}
	if errors.Is(err, failure.ErrInterrupted) {
		return exitInterrupted
	}
	var re *failure.RequestError
	if errors.As(err, &re) {
		return exitUsage
	}
	if errors.Is(err, syscall.ENOSPC) {
		return exitFailure // the disk, not the package or the build
	}
	if c, ok := stageCodes[failure.StageOf(err)]; ok {
		return c
	}
	return exitFailure
}
