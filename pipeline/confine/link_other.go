//go:build !unix

package confine

import (
	"errors"
	"os"
)

// ErrNoLink is returned where hard links between roots cannot be made;
// callers copy instead.
var ErrNoLink = errors.New("hard links between trees are not supported here")

func linkat(fromDir *os.File, from string, toDir *os.File, to string) error { return ErrNoLink }

// CannotLink reports whether Link failed only because the two trees cannot
// share a file, so a copy will do.
func CannotLink(err error) bool { return errors.Is(err, ErrNoLink) }
