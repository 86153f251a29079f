//go:build tools

// This file pins, in go.mod, the library of a stage that is not written
// yet: packaging (pipeline/pkg) with nfpm.
// The "tools" tag keeps it out of every build while go mod tidy still counts
// its imports. Delete each import when the package that uses it lands.
package pipeline

import (
	_ "github.com/goreleaser/nfpm/v2"
)
