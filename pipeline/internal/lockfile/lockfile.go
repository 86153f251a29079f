// Package lockfile takes exclusive and shared flock(2) locks shared between processes,
// waiting for them while a context allows.
package lockfile

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Lock takes an exclusive lock on path (creating the file), polling every
// interval until it is free or ctx is done. The lock is released by the
// returned function, or when the process exits.
func Lock(ctx context.Context, path string, interval time.Duration) (unlock func(), err error) {
	return lock(ctx, path, interval, false)
}

// Shared takes a shared lock on path, as Lock does: any number of shared
// holders at once, none while an exclusive one holds it.
func Shared(ctx context.Context, path string, interval time.Duration) (unlock func(), err error) {
	return lock(ctx, path, interval, true)
}

func lock(ctx context.Context, path string, interval time.Duration, shared bool) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		held, err := tryLock(f, shared)
		if err == nil {
			return func() { unlockFile(f); f.Close() }, nil
		}
		if !held {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}
