package pipeline

import (
	"context"
	"path/filepath"
	"testing"
)

// TestRepositoryLocksAreCurrent fails when a change to the definitions,
// or to what a definition digest covers, leaves the committed lock files
// stale: run coach lock and commit them.
func TestRepositoryLocksAreCurrent(t *testing.T) {
	root, _ := filepath.Abs("..")
	if _, err := Lock(context.Background(), LockRequest{Root: root, Check: true, PinImages: "never"}); err != nil {
		t.Fatalf("%v\n(run go run ./cmd/coach lock --pin-images never, and commit the lock files)", err)
	}
}
