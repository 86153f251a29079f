package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
)

// sourceFlags are the flags of the commands that use the source cache.
type sourceFlags struct {
	cacheDir string
	mirrors  []string
	offline  bool
	jobs     int
}

func (s *sourceFlags) registerCache(f *pflag.FlagSet) {
	f.StringVar(&s.cacheDir, "cache-dir", "", "cache directory (default $COACH_CACHE_DIR, else the user cache dir + /coach)")
}

func (s *sourceFlags) registerSources(f *pflag.FlagSet) {
	f.StringArrayVar(&s.mirrors, "source-mirror", nil, "file:// or http(s):// mirror base tried before upstream (repeatable; also $COACH_SOURCE_MIRROR, space-separated)")
	f.BoolVar(&s.offline, "offline", false, "use only the cache and file:// locations; fail naming every missing source")
}

func (s *sourceFlags) registerDownloads(f *pflag.FlagSet) {
	f.IntVarP(&s.jobs, "jobs", "j", 4, "downloads at once")
}

func (s *sourceFlags) cache() string {
	if s.cacheDir != "" {
		return s.cacheDir
	}
	return cache.DefaultDir()
}

func (s *sourceFlags) options(a *app) pipeline.FetcherOptions {
	if s.cacheDir != "" {
		// Everything of this run keeps to the cache named: the software
		// libraries' trees too, which loading the definitions brings
		// (under $COACH_CACHE_DIR).
		os.Setenv("COACH_CACHE_DIR", s.cacheDir)
	}
	return pipeline.FetcherOptions{Root: a.dir, CacheDir: s.cache(), Mirrors: s.mirrors, Offline: s.offline, Log: a.log, Events: a.events}
}

func (a *app) fetchCommand() *cobra.Command {
	var sf sourceFlags
	var locked bool
	cmd := &cobra.Command{
		Use:   "fetch <project>",
		Short: "Fetch every source a project needs into the cache",
		Long: `fetch resolves the project and brings every component's source into the
content-addressed cache, in parallel, verifying checksums as the bytes stream
in. Mirrors (--source-mirror, $COACH_SOURCE_MIRROR) are tried before upstream.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeProjects,
		Annotations:       map[string]string{"live": "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			results, err := pipeline.Fetch(ctx, pipeline.FetchRequest{Root: a.dir, Project: args[0], Locked: locked, FetcherOptions: sf.options(a), Jobs: sf.jobs})
			if err != nil {
				return err
			}
			if !a.output(results) {
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			for _, r := range results {
				state := "fetched"
				if r.Hit {
					state = "cached"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Version, state, mib(r.Bytes), r.From)
			}
			return tw.Flush()
		},
	}
	sf.registerCache(cmd.Flags())
	sf.registerSources(cmd.Flags())
	sf.registerDownloads(cmd.Flags())
	cmd.Flags().BoolVar(&locked, "locked", false, "fail if the lock file is missing or out of date")
	return cmd
}

func (a *app) cacheCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the cache: populate a mirror, list what is missing, collect garbage, push to and pull from a remote cache",
	}
	cmd.AddCommand(a.cachePopulateCommand(), a.cacheMissingCommand(), a.cacheGCCommand(), a.cacheDUCommand(), a.cacheVerifyCommand(), a.cachePushCommand(), a.cachePullCommand())
	return cmd
}

func (a *app) cachePopulateCommand() *cobra.Command {
	var sf sourceFlags
	var dir string
	cmd := &cobra.Command{
		Use:   "populate --dir D",
		Short: "Lay out every source of every definition as a mirror in D",
		Long: `populate fetches every version of every software definition (url and git
sources; path sources live in the repository) and lays them out under D so
that --source-mirror file://D serves them: D/<file name>, D/sha256/<hex> and
D/git/<commit>.bundle.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{"live": "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError(errors.New("--dir is required"))
			}
			repo, err := project.Load(a.dir)
			if err != nil {
				return err
			}
			f, err := pipeline.NewFetcher(sf.options(a))
			if err != nil {
				return err
			}
			ctx, stop := a.signalContext()
			defer stop()
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			pop, err := f.Populate(ctx, fetch.ListedRequests(resolve.AllVersions(repo)), abs, sf.jobs)
			if ctx.Err() != nil {
				return failure.ErrInterrupted
			}
			if err != nil {
				return failure.Stage(event.StageFetch, err)
			}
			if a.output(pop) {
				fmt.Fprintf(a.stdout, "populated %s with %d sources\n", abs, len(pop))
			}
			return nil
		},
	}
	sf.registerCache(cmd.Flags())
	sf.registerSources(cmd.Flags())
	sf.registerDownloads(cmd.Flags())
	cmd.Flags().StringVar(&dir, "dir", "", "mirror directory to fill")
	return cmd
}

type missingJSON struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
}

func (a *app) cacheMissingCommand() *cobra.Command {
	var sf sourceFlags
	cmd := &cobra.Command{
		Use:   "missing [project...]",
		Short: "List sources the cache lacks (exit 5 if any)",
		Long: `missing lists the sources that are not in the cache (or a file:// mirror):
of the named projects' resolved components, or of every version of every
definition when no project is named. It exits 5 when anything is missing, so
CI can gate on it.`,
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := project.Load(a.dir)
			if err != nil {
				return err
			}
			var reqs []fetch.Request
			if len(args) == 0 {
				reqs = fetch.ListedRequests(resolve.AllVersions(repo))
			}
			for _, name := range args {
				prep, err := project.PrepareProject(repo, name, project.Options{})
				if err != nil {
					return err
				}
				reqs = append(reqs, fetch.Requests(prep.Resolution)...)
			}
			f, err := pipeline.NewFetcher(sf.options(a))
			if err != nil {
				return err
			}
			missing := f.Missing(reqs)
			out := []missingJSON{}
			for _, m := range missing {
				src := m.Source.URL
				if m.Source.Git != "" {
					src = m.Source.Git + " @ " + m.Source.Commit
				} else if m.Source.Path != "" {
					src = "software/" + m.Source.Path
				}
				out = append(out, missingJSON{m.Name, m.Version, src})
			}
			text := a.output(out)
			if text {
				for _, m := range out {
					fmt.Fprintf(a.stdout, "%s@%s\t%s\n", m.Name, m.Version, m.Source)
				}
			}
			if len(missing) > 0 {
				return withCode(exitFetch, fmt.Errorf("%d of %d sources are missing from %s", len(missing), len(reqs), f.Cache.Dir))
			}
			if text {
				fmt.Fprintf(a.stdout, "all %d sources are cached\n", len(reqs))
			}
			return nil
		},
	}
	sf.registerCache(cmd.Flags())
	cmd.Flags().StringArrayVar(&sf.mirrors, "source-mirror", nil, "file:// mirror base that counts as having a source (repeatable; also $COACH_SOURCE_MIRROR)")
	return cmd
}

func (a *app) cacheVerifyCommand() *cobra.Command {
	var sf sourceFlags
	var req cache.VerifyCacheRequest
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every source, layer and verify result of the cache against its digest",
		Long: `verify re-hashes every source against the sha256 or sha512 it is named for (a
git source's tar against the digest recorded when it was made), every file of
every layer against the layer's manifest (and the manifest against the digest
the layer is known by), and every cached verify result against its own digest.
It reports each corrupt entry; with --repair it evicts them, and the next build
fetches or builds them again. It exits 1 when it found a corrupt entry it did
not repair.

Builds check what they take from the cache as they go (a source as it is
unpacked, a layer's files by their recorded metadata before it is used, every
byte of a tree as it is packaged); verify reads everything, for the damage a
build would find only when it reads the bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Log = a.log
			res, err := cache.New(sf.cache()).Check(ctx, req)
			if err != nil {
				return err
			}
			if a.output(res) {
				for _, c := range res.Corrupt {
					state := "CORRUPT"
					if c.Evicted {
						state = "evicted"
					}
					fmt.Fprintf(a.stdout, "%s\t%s: %s\n", state, c.Path, c.Problem)
				}
				fmt.Fprintf(a.stdout, "checked %d sources, %d layers and %d verify results (%s read) in %.1fs: %d corrupt\n",
					res.Sources, res.Layers, res.VerifyResults, mib(res.BytesRead), res.Seconds, len(res.Corrupt))
			}
			for _, c := range res.Corrupt {
				if !c.Evicted {
					return withCode(exitFailure, fmt.Errorf("%d corrupt cache entries (coach cache verify --repair evicts them)", len(res.Corrupt)))
				}
			}
			return nil
		},
	}
	sf.registerCache(cmd.Flags())
	cmd.Flags().BoolVar(&req.Repair, "repair", false, "evict every corrupt entry (the next build fetches or builds it again)")
	return cmd
}

func (a *app) cacheGCCommand() *cobra.Command {
	var sf sourceFlags
	var keepSize, unusedFor string
	req := pipeline.GCRequest{KeepSize: -1}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove what nothing uses from the cache; with --keep-size, shrink it",
		Long: `gc removes what nothing in this repository uses from the cache:

  sources           that no definition lists
  layers            that no project's build, as locked, would use (any
                    target, arch or runner of the project)
  root filesystems  unused for --unused-for (default 30d)
  build environments
                    a target's base root with a component's build packages,
                    and the packages downloaded for them: the same
  work trees        unused for --unused-for, or of a project the repository
                    does not have
  leftovers         temporary layers, half-made root filesystems and verify
                    roots of processes that are gone

With --keep-size it then removes the least recently used of what is left, of
any kind, until the cache takes at most that size (0 empties it; the next
build fetches and builds again). It waits for every coach run using the
cache to finish, and runs that start meanwhile wait for it, so it never
removes what a build, package or verify is using.

A cache shared by several repositories keeps what the others use too: each
build records what it used under <cache>/roots/ (its repository's GC root),
and gc keeps every source and layer a root whose repository still exists
names, saying for whom; the roots of repositories that are gone are dropped,
and what only they used is collected. --ignore-other-repositories collects
what only the other repositories use (they fetch and build it again).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			if keepSize != "" {
				n, err := parseSize(keepSize)
				if err != nil {
					return usageError(fmt.Errorf("--keep-size: %w", err))
				}
				req.KeepSize = n
			}
			if unusedFor != "" {
				d, err := parseDays(unusedFor)
				if err != nil {
					return usageError(fmt.Errorf("--unused-for: %w", err))
				}
				req.UnusedFor = d
			}
			req.Root, req.CacheDir, req.Log = a.dir, sf.cache(), a.log
			res, err := pipeline.GC(ctx, req)
			if err != nil && (res == nil || len(res.Failed) == 0) {
				return err
			}
			// What was removed is reported even when some entries
			// could not be; err then names those.
			if !a.output(res) {
				return err
			}
			verb := "removed"
			if req.DryRun {
				verb = "would remove"
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			for _, r := range res.Removed {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", verb, r.Kind, mib(r.Bytes), r.Path+": "+r.Reason)
			}
			tw.Flush()
			for _, r := range res.Roots {
				if r.Gone {
					fmt.Fprintf(a.stdout, "dropped the GC root of %s (the repository is gone)\n", r.Path)
				} else if !req.IgnoreOtherRepositories {
					fmt.Fprintf(a.stdout, "kept what %s uses (%d layers, %d sources)\n", r.Path, r.Layers, r.Sources)
				}
			}
			fmt.Fprintf(a.stdout, "%s %d entries (%s), kept %d; the cache took %s, now %s\n", verb, len(res.Removed), mib(res.Bytes), res.Kept, mib(res.Before), mib(res.After))
			return err
		},
	}
	fl := cmd.Flags()
	sf.registerCache(fl)
	fl.BoolVarP(&req.DryRun, "dry-run", "n", false, "only list what would be removed")
	fl.BoolVar(&req.IgnoreOtherRepositories, "ignore-other-repositories", false, "also collect the sources and layers only other repositories sharing the cache use")
	fl.StringVar(&keepSize, "keep-size", "", "then remove the least recently used until the cache takes at most this much: bytes, or with K, M, G or T (powers of 1024)")
	fl.StringVar(&unusedFor, "unused-for", "30d", "how long a root filesystem or work tree may go unused: days (30d) or a Go duration (12h)")
	return cmd
}

// parseSize reads a size: 0, 512, 200M, 1.5G.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := float64(1)
	for i, u := range []string{"K", "M", "G", "T"} {
		if rest, ok := strings.CutSuffix(strings.TrimSuffix(s, "B"), u); ok && rest != "" {
			s, mult = rest, float64(int64(1)<<(10*(i+1)))
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "B"), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size (0, 512, 200M, 1.5G)", s)
	}
	return int64(f * mult), nil
}

// parseDays reads 30d, or a Go duration.
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration (30d, 12h)", s)
	}
	return d, nil
}

func (a *app) cacheDUCommand() *cobra.Command {
	var sf sourceFlags
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show what the cache takes on disk, by kind",
		Long: `du measures the cache by kind: sources, dependency layers, root filesystems
(in $COACH_ROOTFS_DIR when set), build environments (a target's base root
with one component's build packages added; only what the packages added
counts there, the base's files being hard links), work trees, leftover verify
roots and verify results. Sizes are allocated bytes, each file counted once
however many hard links it has.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			use, err := cache.New(sf.cache()).Usage()
			if err != nil {
				return err
			}
			if !a.output(use) {
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			var total int64
			for _, u := range use {
				fmt.Fprintf(tw, "%s\t%d entries\t%s\t%s\n", u.Kind, u.Entries, mib(u.Bytes), u.Path)
				total += u.Bytes
			}
			fmt.Fprintf(tw, "total\t\t%s\t\n", mib(total))
			return tw.Flush()
		},
	}
	sf.registerCache(cmd.Flags())
	return cmd
}
