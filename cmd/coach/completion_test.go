package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCompletion: every enum flag completes to its values, shell to the
// project's components, bump to software names.
func TestCompletion(t *testing.T) {
	repo := t.TempDir()
	writeTree(t, repo, map[string]string{
		"projects/app.yaml":   "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [top]\n",
		"software/top.yaml":   "name: top\nlicense: MIT\ndependencies: [dep]\nversions: [{version: 1.0.0, path: top}]\nbuild: [make]\n",
		"software/dep.yaml":   "name: dep\nlicense: MIT\nversions: [{version: 1.0.0, path: dep}]\nbuild: [make]\n",
		"software/else.yaml":  "name: else\nlicense: MIT\nversions: [{version: 1.0.0, path: dep}]\nbuild: [make]\n",
		"software/top/README": "x\n",
		"software/dep/README": "x\n",
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "app", "--runner", ""}, "auto sandbox dagger"},
		{[]string{"verify", "x.deb", "--runner", ""}, "auto sandbox dagger"},
		{[]string{"build", "app", "-a", ""}, "amd64 arm64"},
		{[]string{"plan", "app", "--arch", ""}, "amd64 arm64"},
		{[]string{"shell", "app", "-a", ""}, "amd64 arm64"},
		{[]string{"build", "app", "--progress", ""}, "auto tty plain quiet"},
		{[]string{"validate", "--log-format", ""}, "auto text json"},
		{[]string{"build", "app", "--skip", ""}, "health package verify"},
		{[]string{"shell", "app", ""}, "dep top"},
		{[]string{"shell", ""}, "app"},
		{[]string{"bump", ""}, "dep else top"},
	} {
		var out, errb bytes.Buffer
		run(append([]string{"__complete", "-C", repo}, tc.args...), &out, &errb)
		var got []string
		for _, line := range strings.Split(out.String(), "\n") {
			if line != "" && !strings.HasPrefix(line, ":") {
				got = append(got, strings.SplitN(line, "\t", 2)[0])
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("coach %s<TAB> = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
