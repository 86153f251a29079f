//go:build unix

package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func freeSpace(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return ""
	}
	return fmt.Sprintf(", %.1f GiB free", float64(st.Bavail)*float64(st.Bsize)/(1<<30))
}
