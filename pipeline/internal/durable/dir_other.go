//go:build !unix

package durable

// syncDir does nothing where directories cannot be synced (Windows: the
// rename is as durable as the filesystem makes it).
func syncDir(dir string) error { return nil }
