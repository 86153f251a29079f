package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// aptCommands are how pkgs get installed here: apt-get update, then
// apt-get install; as root directly, through sudo otherwise.
func aptCommands(pkgs []string, euid int, lookPath func(string) (string, error)) ([][]string, error) {
	if _, err := lookPath("apt-get"); err != nil {
		return nil, fmt.Errorf("there is no apt-get here: install %s with this system's package manager", strings.Join(pkgs, " "))
	}
	prefix := []string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get"}
	if euid != 0 {
		if _, err := lookPath("sudo"); err != nil {
			return nil, fmt.Errorf("installing packages needs root, and there is no sudo: as root, run apt-get install -y %s", strings.Join(pkgs, " "))
		}
		prefix = append([]string{"sudo"}, prefix...)
	}
	update := append(slices.Clone(prefix), "update", "-qq")
	install := append(append(slices.Clone(prefix), "install", "-y", "-qq", "--no-install-recommends", "--"), pkgs...)
	return [][]string{update, install}, nil
}

// installHostTools installs pkgs, saying first what it will run. apt's
// output goes to stderr, so that --json still prints one document.
func (a *app) installHostTools(ctx context.Context, pkgs []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(pkgs) == 0 {
		fmt.Fprintln(a.stderr, "coach doctor --fix: every host tool is installed; nothing to do")
		return nil
	}
	cmds, err := aptCommands(pkgs, os.Geteuid(), exec.LookPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "coach doctor --fix: installing %s: %s && %s\n", strings.Join(pkgs, ", "), strings.Join(cmds[0], " "), strings.Join(cmds[1], " "))
	for _, argv := range cmds {
		c := exec.CommandContext(ctx, argv[0], argv[1:]...)
		c.Stdout, c.Stderr = a.stderr, a.stderr
		if err := c.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("%s: exit code %d", strings.Join(argv, " "), ee.ExitCode())
			}
			return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	return nil
}
