//go:build unix

// Package proc answers whether a process still exists, for sweeping what
// killed processes left behind.
package proc

import (
	"errors"
	"syscall"
)

// Alive reports whether a process of that id exists.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
