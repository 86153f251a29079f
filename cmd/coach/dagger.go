package main

import (
	"errors"

	"github.com/coach-build/coach/pipeline/runner"
)

func newDaggerRunner(a *app) (runner.Runner, error) {
	return nil, errors.New("dagger runner: not wired yet")
}
