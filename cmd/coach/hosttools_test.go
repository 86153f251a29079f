package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestAptCommands: root runs apt-get itself, a user goes through sudo, and
// a user without sudo or a host without apt-get is told what to do.
func TestAptCommands(t *testing.T) {
	have := func(tools ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			if slices.Contains(tools, name) {
				return "/usr/bin/" + name, nil
			}
			return "", errors.New("not found")
		}
	}
	pkgs := []string{"bubblewrap", "mmdebstrap"}
	cmds, err := aptCommands(pkgs, 0, have("apt-get"))
	if err != nil || cmds[0][0] != "env" || !slices.Equal(cmds[1][len(cmds[1])-3:], []string{"--", "bubblewrap", "mmdebstrap"}) {
		t.Errorf("as root: %q, %v", cmds, err)
	}
	cmds, err = aptCommands(pkgs, 1000, have("apt-get", "sudo"))
	if err != nil || cmds[0][0] != "sudo" || cmds[1][0] != "sudo" || !slices.Contains(cmds[0], "update") {
		t.Errorf("as a user with sudo: %q, %v", cmds, err)
	}
	if _, err := aptCommands(pkgs, 1000, have("apt-get")); err == nil || !strings.Contains(err.Error(), "as root, run apt-get install -y bubblewrap mmdebstrap") {
		t.Errorf("as a user without sudo: %v", err)
	}
	if _, err := aptCommands(pkgs, 0, have()); err == nil || !strings.Contains(err.Error(), "no apt-get") {
		t.Errorf("without apt-get: %v", err)
	}
}
