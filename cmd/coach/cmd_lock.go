package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/spec"
)

type lockJSON struct {
	Project    string              `json:"project"`
	Path       string              `json:"path"`
	Changed    bool                `json:"changed"`
	Changes    []string            `json:"changes"`
	Components []resolve.Component `json:"components"`
}

func (a *app) lockCommand() *cobra.Command {
	var upgrade, check bool
	var pinImages string
	cmd := &cobra.Command{
		Use:   "lock [project...]",
		Short: "Resolve versions and write projects/<name>.lock",
		Long: `lock resolves every component of the named projects (all projects when none
is named) and writes projects/<name>.lock. A version already locked is kept
while it still satisfies its constraint; --upgrade resolves afresh to the
highest allowed versions. --check writes nothing and exits 4 if a lock file
is missing or out of date.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if upgrade && check {
				return usageError(errors.New("--upgrade and --check cannot be used together"))
			}
			repo, err := pipeline.Load(a.dir)
			if err != nil {
				return err
			}
			pins, done, err := a.imagePinner(pinImages)
			if err != nil {
				return err
			}
			defer done()
			projects := args
			if len(projects) == 0 {
				projects = repo.ProjectNames()
			}
			var results []lockJSON
			var stale []error
			for _, name := range projects {
				p, err := repo.Project(name)
				if err != nil {
					return usageError(err)
				}
				old, err := resolve.ReadLock(repo.Root, name)
				if err != nil && !upgrade {
					return withCode(exitResolve, err)
				}
				opts := resolve.Options{}
				if !upgrade {
					opts.Prefer = old.Versions()
				}
				res, err := resolve.Resolve(repo, p, opts)
				if err != nil {
					return withCode(exitResolve, err)
				}
				changes := resolve.Diff(old, res.Lock())
				images := map[string]string{}
				if old != nil {
					for t, pin := range old.Images {
						images[t] = pin
					}
				}
				if pins != nil {
					fresh, err := pins(cmd.Context(), p)
					if err != nil {
						return withCode(exitResolve, fmt.Errorf("pin the images of %s: %w", name, err))
					}
					var oldImages map[string]string
					if old != nil {
						oldImages = old.Images
					}
					changes = append(changes, resolve.DiffImages(oldImages, fresh)...)
					for t, pin := range fresh {
						images[t] = pin
					}
				}
				if old != nil && old.SourceDateEpoch == 0 {
					changes = append(changes, "source_date_epoch: recorded for reproducible packages")
				}
				r := lockJSON{Project: name, Path: a.rel(resolve.LockPath(repo.Root, name)), Changed: len(changes) > 0, Changes: changes, Components: res.Components}
				if r.Changes == nil {
					r.Changes = []string{}
				}
				results = append(results, r)
				switch {
				case check && r.Changed:
					stale = append(stale, &resolve.StaleError{Path: r.Path, Project: name, Changes: changes})
				case check:
				case r.Changed:
					l := res.Lock()
					l.SourceDateEpoch = time.Now().Unix()
					if len(images) > 0 {
						l.Images = images
					}
					if err := resolve.WriteLock(repo.Root, l); err != nil {
						return fmt.Errorf("write %s: %w", r.Path, err)
					}
				}
				if !a.json {
					switch {
					case !r.Changed:
						fmt.Fprintf(a.stdout, "%s is up to date (%s)\n", r.Path, plural(len(res.Components), "component"))
					case check:
					default:
						if len(changes) == 1 && changes[0] == resolve.NoLockFile {
							fmt.Fprintf(a.stdout, "wrote %s, a new lock file (%s)\n", r.Path, plural(len(res.Components), "component"))
							break
						}
						fmt.Fprintf(a.stdout, "wrote %s (%s):\n", r.Path, plural(len(res.Components), "component"))
						for _, c := range slices.Clone(changes) {
							fmt.Fprintf(a.stdout, "\t%s\n", c)
						}
					}
				}
			}
			a.output(results)
			return withCode(exitResolve, errors.Join(stale...))
		},
	}
	cmd.Flags().BoolVar(&upgrade, "upgrade", false, "ignore locked versions and resolve to the highest allowed")
	cmd.Flags().BoolVar(&check, "check", false, "write nothing; exit 4 if a lock file is missing or out of date")
	cmd.Flags().StringVar(&pinImages, "pin-images", "auto", "pin each target's image by digest through the Dagger engine: auto (when an engine is configured), always or never")
	return cmd
}

// imagePinner returns what resolves a project's target images to digests,
// or nil when images are not pinned this time.
func (a *app) imagePinner(mode string) (func(context.Context, *spec.Project) (map[string]string, error), func(), error) {
	switch mode {
	case "never":
		return nil, func() {}, nil
	case "auto":
		if !pipeline.DaggerConfigured() {
			return nil, func() {}, nil
		}
	case "always":
	default:
		return nil, nil, usageError(errors.New("--pin-images must be auto, always or never"))
	}
	r := dagger.New(nil)
	pin := func(ctx context.Context, p *spec.Project) (map[string]string, error) {
		out := map[string]string{}
		for _, name := range p.Targets {
			t, err := p.Target(name)
			if err != nil || t.Image == "" {
				continue
			}
			ref, err := r.PinImage(ctx, t.Image)
			if err != nil {
				if mode == "always" {
					return nil, err
				}
				// Kept as it was: an image this engine cannot reach is
				// not a reason to refuse the rest of the lock.
				a.log.Warn("image not pinned", "target", name, "image", t.Image, "err", err)
				continue
			}
			out[name] = ref
		}
		return out, nil
	}
	return pin, func() { r.Close() }, nil
}
