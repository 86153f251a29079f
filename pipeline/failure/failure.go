// Package failure says how a pipeline run failed, in types a caller maps
// to exit codes: which stage failed (a *StageError), a request that names
// what does not exist (a *RequestError), or an interrupt (ErrInterrupted).
// It is a leaf: every stage and command can use it.
package failure

import (
	"errors"
	"fmt"
)

// StageError says which stage failed: one of the event package's stage
// names (load, resolve, plan, fetch, build, health, package, verify).
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// Stage tags err with the stage it came from; nil stays nil.
func Stage(name string, err error) error {
	if err == nil {
		return nil
	}
	return &StageError{Stage: name, Err: err}
}

// StageOf returns the stage an error came from, or "".
func StageOf(err error) string {
	var se *StageError
	if errors.As(err, &se) {
		return se.Stage
	}
	return ""
}

// RequestError is a request that names something that does not exist: a
// project, or a target the project does not build. The CLI treats it as a
// usage error.
type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// Request makes a RequestError.
func Request(err error) error { return &RequestError{err} }

// ErrInterrupted is a run stopped by its context (SIGINT, SIGTERM): what
// it had made is cleaned up or left for a later sweep, never kept as
// complete.
var ErrInterrupted = errors.New("interrupted")

// Interrupted says what was interrupted.
func Interrupted(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInterrupted)
}

// IsInterrupted reports whether err is an interrupt.
func IsInterrupted(err error) bool { return err != nil && errors.Is(err, ErrInterrupted) }
