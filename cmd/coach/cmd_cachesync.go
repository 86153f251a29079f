package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
)

func (a *app) cachePushCommand() *cobra.Command {
	return a.cacheSyncCommand(true)
}

func (a *app) cachePullCommand() *cobra.Command {
	return a.cacheSyncCommand(false)
}

// cacheSyncCommand is cache push (push) or cache pull.
func (a *app) cacheSyncCommand(push bool) *cobra.Command {
	var req pipeline.CacheSyncRequest
	var sf sourceFlags
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "pull <project> --cache-from oci://registry/repository",
		Short: "Warm this machine's cache with a project's layers from a remote cache",
		Long: `pull brings from the remote cache every layer a build of the project would
look up (for its targets and arches, with --runner's build environments) that
this machine's cache lacks, in dependency order, each checked as a build
checks it: unpacked confined, its content digest the one its metadata
records, and signed by --cache-verify-key when one is given. A build then
finds them here. Exit 0 even when some layers are missing (they are built).`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeProjects,
		Annotations:       map[string]string{"live": "true"},
	}
	if push {
		cmd.Use = "push <project> --cache-to oci://registry/repository"
		cmd.Short = "Seed a remote cache with a project's layers and sources from this machine's cache"
		cmd.Long = `push gives the remote cache every layer of the project this machine's cache
holds (for its targets and arches, in every build environment the cache has
layers of) and every source it holds, that the remote lacks. Layers are
signed with --cache-sign-key when one is given. Only trusted machines (CI)
should push: whoever writes the cache decides what others build with.`
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stop := a.signalContext()
		defer stop()
		req.Root, req.Project, req.CacheDir = a.dir, args[0], sf.cache()
		req.Remote = rf.options()
		req.Log, req.Events = a.log, a.events
		var res *pipeline.CacheSyncResult
		var err error
		if push {
			res, err = pipeline.CachePush(ctx, req)
		} else {
			res, err = pipeline.CachePull(ctx, req)
		}
		if res != nil && a.output(res) {
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			for _, l := range res.Layers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Target, l.Arch, l.Component, l.Version, l.State)
			}
			for _, s := range res.Sources {
				fmt.Fprintf(tw, "source\t\t%s\t%s\t%s\n", s.Component, s.Version, s.State)
			}
			tw.Flush()
			if r := res.Remote; r != nil {
				fmt.Fprintf(a.stdout, "remote cache %s: pulled %d entries (%s), pushed %d (%s)\n", r.Ref, r.Pulled, mib(r.PulledBytes), r.Pushed, mib(r.PushedBytes))
			}
		}
		return err
	}
	fl := cmd.Flags()
	sf.registerCache(fl)
	a.targetFlag(cmd, &req.Targets, "only these targets (repeatable; default: all of the project's)")
	fl.StringSliceVarP(&req.Arches, "arch", "a", nil, "these architectures (repeatable; default: the project's arches, else this machine's)")
	fl.BoolVar(&req.Locked, "locked", false, "fail if the lock file is missing or out of date")
	if !push {
		fl.StringVar(&req.RunnerName, "runner", "auto", "the runner whose build environments the layers are for: auto, sandbox or dagger")
	}
	rf.register(fl, !push, push)
	return cmd
}
