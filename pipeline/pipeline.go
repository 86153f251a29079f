// Package pipeline runs coach's stages in order. Each stage is a package of
// its own with one job:
//
//	load     spec      projects/*.yaml, software/*.yaml, scripts/<project>/
//	resolve  resolve   semver constraints + lock file -> one version each
//	plan     plan      dependency DAG, parallel levels, cache keys
//	fetch    fetch     pinned sources into a content-addressed cache
//	build    build     each component in an isolated runner -> layers
//	health   health    ELF linkage audit of the merged tree
//	package  pkg       deb/rpm per target with nfpm
//	verify   verify    install, upgrade, remove in a clean target
//	publish  publish   signed apt and dnf repositories, local or in S3
//
// This package strings them together, one small file per command: Fetch,
// Run (the whole flow, through package flow, for each target), Health,
// Package, Verify, Publish, Shell, Lock, Bump, ListOutdated and GC are the
// Go API the CLI is a thin layer over. Each reports what it does as events
// (package event) and says which stage failed, so that a caller can map a
// failure to an exit code.
package pipeline

import (
	"log/slog"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
)

// Stage names, as they appear in errors, events and reports.
const (
	StageLoad    = event.StageLoad
	StageResolve = event.StageResolve
	StagePlan    = event.StagePlan
	StageFetch   = event.StageFetch
	StageBuild   = event.StageBuild
	StageHealth  = event.StageHealth
	StagePackage = event.StagePackage
	StageVerify  = event.StageVerify
)

// stage tags an error with its stage (failure.Stage).
func stage(name string, err error) error { return failure.Stage(name, err) }

// logger is l, or a logger that drops everything.
func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
