package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coach-build/coach/pipeline/confine"
)

func TestBoundedStopsAtTheLimitAndTheContext(t *testing.T) {
	_, err := io.Copy(io.Discard, &Bounded{Ctx: context.Background(), R: bytes.NewReader(make([]byte, 1000)), Limit: 999, Name: "x"})
	var big *TooLargeError
	if !errors.As(err, &big) {
		t.Errorf("1000 bytes under a limit of 999: %v", err)
	}
	if _, err := io.Copy(io.Discard, &Bounded{Ctx: context.Background(), R: bytes.NewReader(make([]byte, 1000)), Limit: 1000}); err != nil {
		t.Errorf("1000 bytes under a limit of 1000: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := io.Copy(io.Discard, &Bounded{Ctx: ctx, R: strings.NewReader("x"), Limit: 10}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled read: %v", err)
	}
}

func TestOpenRegularRefusesDevicesAndFIFOs(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/zero", fifo} {
		if f, _, err := OpenRegular(p); !errors.Is(err, confine.ErrNotRegular) {
			if f != nil {
				f.Close()
			}
			t.Errorf("%s: %v, want ErrNotRegular", p, err)
		}
	}
}
