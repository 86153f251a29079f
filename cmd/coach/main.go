// Command coach builds omnibus-style deb and rpm packages: everything above
// libc compiled from pinned sources into one prefix, checked, and packaged
// per target distribution. See README.md and docs/ for the guide.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
