package lockfile

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockWaitsAndHonoursContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), p, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, p, 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held lock was taken again: %v", err)
	}
	go func() { time.Sleep(50 * time.Millisecond); unlock() }()
	u2, err := Lock(context.Background(), p, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	u2()
}

// TestSharedLocks: shared holders coexist; an exclusive lock waits for
// all of them, and a shared one waits for an exclusive holder.
func TestSharedLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	bg := context.Background()
	u1, err := Shared(bg, p, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := Shared(bg, p, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("a second shared lock was refused: %v", err)
	}
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if _, err := Lock(short(), p, 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an exclusive lock was taken while shared ones were held: %v", err)
	}
	u1()
	if _, err := Lock(short(), p, 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an exclusive lock was taken while a shared one was held: %v", err)
	}
	u2()
	ux, err := Lock(short(), p, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("an exclusive lock was refused with no holder: %v", err)
	}
	if _, err := Shared(short(), p, 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a shared lock was taken while an exclusive one was held: %v", err)
	}
	ux()
}
