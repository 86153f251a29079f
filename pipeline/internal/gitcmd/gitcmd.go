// Package gitcmd runs git for what coach fetches from repositories (git
// sources, software libraries): with no prompt, no system configuration,
// and no transport that runs a command.
package gitcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Run runs git with args, in repo (a bare repository) when it is not
// empty, and returns its standard output, trimmed. A failure carries git's
// standard error.
func Run(ctx context.Context, repo string, args ...string) (string, error) {
	full := []string{"-c", "protocol.ext.allow=never", "-c", "protocol.file.allow=always"}
	if repo != "" {
		full = append(full, "-C", repo)
	}
	cmd := exec.CommandContext(ctx, "git", append(full, args...)...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=true")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", errors.New("git is not installed (apt-get install git)")
		}
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// FetchCommit brings commit from the repository at url into repo: the
// commit itself, shallow, which most servers allow; otherwise every branch
// and tag, to find it among them. It fails when the commit is not there
// afterwards.
func FetchCommit(ctx context.Context, repo, url, commit string) error {
	if _, err := Run(ctx, repo, "fetch", "-q", "--depth", "1", "--", url, commit); err != nil {
		if _, err := Run(ctx, repo, "fetch", "-q", "--", url, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return err
		}
	}
	if _, err := Run(ctx, repo, "cat-file", "-e", "--", commit+"^{commit}"); err != nil {
		return fmt.Errorf("commit %s is not in the repository", commit)
	}
	return nil
}
