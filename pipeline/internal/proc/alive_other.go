//go:build !unix

// Package proc answers whether a process still exists, for sweeping what
// killed processes left behind.
package proc

import "os"

// Alive reports whether a process of that id exists; where that cannot be
// told cheaply, it says yes, so nothing of a live process is swept.
func Alive(pid int) bool {
	_, err := os.FindProcess(pid)
	return err == nil
}
