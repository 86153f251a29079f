package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/plan"
	"github.com/coach-build/coach/pipeline/project"
)

func (a *app) planCommand() *cobra.Command {
	var opts project.Options
	var proj projectFlags
	var dot bool
	var arches []string
	cmd := &cobra.Command{
		Use:   "plan <project>",
		Short: "Show the build graph: order, parallel levels and cache keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dot && a.json {
				return usageError(errors.New("--dot and --json cannot be used together"))
			}
			var err error
			if opts.Arch, err = oneArch(arches, "a plan"); err != nil {
				return err
			}
			if opts.Overrides, err = proj.parsedOverrides(); err != nil {
				return err
			}
			opts.Version, opts.Iteration = proj.version, proj.iteration
			prep, err := project.Prepare(a.dir, args[0], opts)
			if err != nil {
				return err
			}
			if len(prep.LockStale) > 0 {
				a.log.Warn("lock file is out of date; the plan uses fresh resolution (run coach lock)", "project", args[0], "changes", strings.Join(prep.LockStale, "; "))
			}
			switch {
			case !a.output(prep.Plan):
				return nil
			case dot:
				return writeDot(a.stdout, prep.Plan)
			}
			return writePlan(a.stdout, prep.Plan)
		},
	}
	a.targetFlag(cmd, &opts.Targets, "plan only these targets (repeatable)")
	cmd.Flags().BoolVar(&opts.Locked, "locked", false, "fail if the lock file is missing or out of date")
	a.archFlag(cmd, &arches, "the build's architecture, amd64 or arm64 (one: a plan is of one architecture; default: the host's)")
	cmd.Flags().BoolVar(&dot, "dot", false, "write the graph in Graphviz dot format")
	proj.register(cmd.Flags(), true)
	return cmd
}

func writePlan(out io.Writer, pl *plan.Plan) error {
	w := &trimWriter{w: out}
	defer w.Flush()
	fmt.Fprintf(w, "%s %s into %s (%s): %d components in %d levels, targets %s\n",
		pl.Project, pl.Version, pl.InstallDir, pl.Arch, len(pl.Nodes), len(pl.Levels), strings.Join(pl.Targets, " "))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, level := range pl.Levels {
		fmt.Fprintf(tw, "level %d\n", i)
		for _, name := range level {
			n := pl.Node(name)
			deps := "-"
			if len(n.Dependencies) > 0 {
				deps = "needs " + strings.Join(n.Dependencies, ", ")
			}
			if n.Library != "" {
				deps += "; from library " + n.Library
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", n.Name, n.Version, shortPin(n.Source), deps)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "cache keys")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, n := range pl.Nodes {
		for _, t := range pl.Targets {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", n.Name, t, shortKey(n.Keys[t]))
		}
	}
	return tw.Flush()
}

func shortPin(pin string) string {
	kind, sum, ok := strings.Cut(pin, ":")
	if !ok || len(sum) < 12 {
		return pin
	}
	return kind + ":" + sum[:12]
}

func shortKey(k string) string { return shortPin(k) }

func writeDot(w io.Writer, pl *plan.Plan) error {
	fmt.Fprintf(w, "digraph %q {\n\trankdir=BT;\n\tnode [shape=box];\n", pl.Project)
	for _, n := range pl.Nodes {
		fmt.Fprintf(w, "\t%q [label=\"%s\\n%s\"];\n", n.Name, n.Name, n.Version)
	}
	for _, n := range pl.Nodes {
		for _, d := range n.Dependencies {
			fmt.Fprintf(w, "\t%q -> %q;\n", n.Name, d)
		}
	}
	for i, level := range pl.Levels {
		fmt.Fprintf(w, "\t{ rank=same; /* level %d */", i)
		for _, name := range level {
			fmt.Fprintf(w, " %q;", name)
		}
		fmt.Fprintln(w, " }")
	}
	_, err := fmt.Fprintln(w, "}")
	return err
}

// trimWriter drops trailing blanks that tabwriter leaves on short rows.
type trimWriter struct {
	w   io.Writer
	buf []byte
}

func (t *trimWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := t.w.Write(append(bytes.TrimRight(t.buf[:i], " "), '\n')); err != nil {
			return 0, err
		}
		t.buf = t.buf[i+1:]
	}
}

// Flush writes a final line without a newline.
func (t *trimWriter) Flush() {
	if len(t.buf) > 0 {
		t.w.Write(bytes.TrimRight(t.buf, " "))
		t.buf = nil
	}
}
