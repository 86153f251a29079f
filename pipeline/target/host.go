package target

import (
	"bufio"
	"os"
	"strings"
)

// Host guesses the catalogue target of this host from os-release.
func Host() (Target, bool) {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return Target{}, false
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kv[k] = strings.Trim(v, `"`)
		}
	}
	major, _, _ := strings.Cut(kv["VERSION_ID"], ".")
	var name string
	switch kv["ID"] {
	case "debian":
		name = "debian-" + major
	case "ubuntu":
		name = "ubuntu-" + kv["VERSION_ID"]
	case "rhel", "almalinux", "rocky", "centos":
		name = "el" + major
	case "amzn":
		name = "amazonlinux-" + kv["VERSION_ID"]
	}
	return Builtin(name)
}
