package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/publish"
)

func (a *app) publishCommand() *cobra.Command {
	var req pipeline.PublishRequest
	var url string
	cmd := &cobra.Command{
		Use:   "publish <release-dir>... (--repo <dir> | --to s3://bucket/prefix) --sign-key <key>",
		Short: "Add the packages of release directories to signed apt and dnf repositories",
		Long: `publish checks each release directory's packages against its SHA256SUMS,
adds the debs to the apt repository in --repo (pool/, and for each target's
suite dists/<suite>/main/binary-<arch>/Packages{,.gz,.xz} with by-hash copies,
Release, Release.gpg and InRelease signed with --sign-key, and the public key
as archive-key.asc), adds the rpms to a dnf repository per target and
architecture (rpm/<target>/<arch>/Packages and repodata/ with repomd.xml and
its signature repomd.xml.asc), and writes SHA256SUMS.asc beside each
release's sums.

A publication is atomic for clients: packages first, then the indexes by
hash (or by checksum-named metadata files), then the signed Release files or
repomd.xml. Publishing the same
release again changes nothing; a published file is never replaced by other
bytes. --keep drops older versions of each package from the indexes, and
their files. One publication holds the repository at a time.

With --to s3://bucket/prefix the repository lives in S3-compatible object
storage: what the bucket has that --repo lacks is downloaded, the packages are
added in --repo, and what changed is uploaded in the same safe order
(packages, metadata named by content, indexes, then the signed files), after
which the objects no index names any more are deleted. Run one publication
per bucket at a time (a CI concurrency group): object storage has no lock.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Releases, req.Log = args, a.log
			res, err := pipeline.Publish(ctx, req)
			if err != nil {
				return err
			}
			if !a.output(res) {
				return nil
			}
			where := res.Repo
			if req.To != "" {
				where = req.To
			}
			fmt.Fprintf(a.stdout, "published %d packages to %s (%d new, %d already there)\n", len(res.Added)+len(res.Present), where, len(res.Added), len(res.Present))
			if res.Pushed != nil {
				fmt.Fprintf(a.stdout, "downloaded %d objects first; uploaded %d objects (%s), deleted %d, %d unchanged\n", res.Pulled, res.Pushed.Uploaded, mib(res.Pushed.UploadedBytes), res.Pushed.Deleted, res.Pushed.Unchanged)
			}
			if len(res.Suites) > 0 {
				fmt.Fprintf(a.stdout, "signed the indexes of %s\n", strings.Join(res.Suites, ", "))
			}
			if len(res.RPMRepos) > 0 {
				fmt.Fprintf(a.stdout, "signed the metadata of %s\n", strings.Join(res.RPMRepos, ", "))
			}
			for _, r := range res.Removed {
				fmt.Fprintf(a.stdout, "removed %s (older than the %d kept)\n", r, req.Keep)
			}
			base := url
			if base == "" {
				abs, _ := filepath.Abs(res.Repo)
				base = "file://" + abs
			}
			// The install instructions, to paste as they are (deb822 and
			// ini files take no indentation).
			for _, s := range res.Suites {
				fmt.Fprintf(a.stdout, "\nTo install from it on %s (as root):\n\ncurl -fsSLo /etc/apt/keyrings/coach.asc %s/%s\ncat > /etc/apt/sources.list.d/coach.sources <<'EOF'\n%sEOF\napt-get update\n",
					s, base, publish.KeyFile, publish.SourcesEntry(base, s, "", "/etc/apt/keyrings/coach.asc"))
			}
			for _, r := range res.RPMRepos {
				t := strings.Split(r, "/")[1]
				fmt.Fprintf(a.stdout, "\nTo install from it on %s (as root):\n\ncat > /etc/yum.repos.d/coach-%s.repo <<'EOF'\n%sEOF\n", t, t, publish.RepoFile(base, t))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Repo, "repo", "", "the repository's directory (made if missing); with --to, its local copy (keep it between runs: only what changed is downloaded)")
	f.StringVar(&req.To, "to", "", "publish to S3-compatible object storage too: s3://bucket/prefix (credentials, endpoint and region from AWS_* variables)")
	f.StringVar(&req.SignKey, "sign-key", "", "GPG private key file to sign the repository and the sums with; the passphrase is read from $COACH_SIGNING_PASSPHRASE")
	f.IntVar(&req.Keep, "keep", 0, "versions of each package to keep in the indexes (0: all)")
	f.StringVar(&url, "url", "", "the address users will reach the repository at, for the install instructions (default: file:// of --repo)")
	return cmd
}
