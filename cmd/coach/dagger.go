package main

import (
	"io"
	"os"
	"time"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
)

// newDaggerRunner returns the Dagger runner, which connects only when a
// component must be built; its progress goes to stderr with -v, and is
// dropped otherwise. $COACH_DAGGER_CONNECT_TIMEOUT (a Go duration) bounds
// the connection.
func newDaggerRunner(a *app) (runner.Runner, error) {
	var logOut io.Writer
	if a.verbose {
		logOut = a.stderr
	}
	r := dagger.New(logOut)
	if v := os.Getenv("COACH_DAGGER_CONNECT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, usageError(err)
		}
		r.ConnectTimeout = d
	}
	return r, nil
}
