//go:build !linux

package fetch

import (
	"errors"
	"os"
)

var errNoTmpfile = errors.New("O_TMPFILE is Linux's")

// openUnnamed fails: without O_TMPFILE, a named partial file is used.
func openUnnamed(dir string) (*os.File, error) { return nil, errNoTmpfile }

func linkUnnamed(f *os.File, name string) error { return errNoTmpfile }
