//go:build !linux

package userns

import (
	"errors"
	"os"
)

var errNotLinux = errors.New("user namespaces are Linux's: use --runner dagger on this system")

// Current fails off Linux: there are no sandboxes here.
func Current() (IDs, error) { return IDs{}, errNotLinux }

// Namespace fails off Linux.
func Namespace() (*os.File, error) { return nil, errNotLinux }

// Chown does nothing off Linux.
func Chown(string) error { return nil }

// ChownTree does nothing off Linux.
func ChownTree(string) error { return nil }

// ShiftTree does nothing off Linux.
func ShiftTree(string) error { return nil }

// ChownLike does nothing off Linux.
func ChownLike(dir, like string) error { return nil }
