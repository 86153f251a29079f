//go:build tools

// This file pins, in go.mod, the libraries of stages that are not written
// yet: the Dagger runner (pipeline/runner/dagger) and packaging (pipeline/pkg).
// The "tools" tag keeps it out of every build while go mod tidy still counts
// its imports. Delete each import when the package that uses it lands.
package pipeline

import (
	_ "dagger.io/dagger"
	_ "github.com/goreleaser/nfpm/v2"
)
