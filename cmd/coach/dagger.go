package main

import (
	"context"
	"io"
	"time"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
)

// newDaggerRunner connects to the engine; its progress goes to stderr with
// -v, and is dropped otherwise.
func newDaggerRunner(a *app) (runner.Runner, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var logOut io.Writer
	if a.verbose {
		logOut = a.stderr
	}
	r, err := dagger.Connect(ctx, logOut)
	if err != nil {
		return nil, withCode(exitBuild, err)
	}
	return r, nil
}
