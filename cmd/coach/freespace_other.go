//go:build !unix

package main

func freeSpace(dir string) string { return "" }
