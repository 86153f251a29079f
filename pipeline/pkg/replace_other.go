//go:build !linux

package pkg

func replaceDir(src, dst string) error { return replaceDirPortable(src, dst) }
