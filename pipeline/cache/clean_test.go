package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/build"
)

// TestCleanWaitsForARunUsingTheTree removes a project's work trees, but
// only once the run holding one's lock lets go.
func TestCleanWaitsForARunUsingTheTree(t *testing.T) {
	cache := t.TempDir()
	for _, d := range []string{"work/app/debian-12/tree/bin", "work/app/debian-12-arm64/tree/bin", "work/other/debian-12/tree"} {
		os.MkdirAll(filepath.Join(cache, d), 0o755)
	}
	os.WriteFile(filepath.Join(cache, "work/app/debian-12/tree/bin/app"), []byte("x"), 0o755)
	busy := filepath.Join(cache, "work/app/debian-12")
	unlock, err := build.LockWork(context.Background(), busy, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := New(cache).Clean(context.Background(), CleanRequest{Project: "app"})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(busy, "tree/bin/app")); err != nil {
		t.Fatal("clean removed a tree another run holds")
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"work/app/debian-12", "work/app/debian-12-arm64"} {
		if _, err := os.Stat(filepath.Join(cache, d)); !os.IsNotExist(err) {
			t.Errorf("%s is still there", d)
		}
	}
	if _, err := os.Stat(filepath.Join(cache, "work/other/debian-12/tree")); err != nil {
		t.Error("another project's tree was removed")
	}
	if _, err := New(cache).Clean(context.Background(), CleanRequest{Project: "../etc"}); err == nil {
		t.Error("a path was taken for a project name")
	}
}
