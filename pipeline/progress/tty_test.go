package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/coach-build/coach/pipeline/event"
)

// TestTTYOfUnknownSize: on a pseudo-terminal nobody sized (0 columns, as
// some CI runners and editors give), log lines are wrapped at the width
// assumed (100 columns), not cut to 20.
func TestTTYOfUnknownSize(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 0, Rows: 0}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&out, ptmx)
		close(copied)
	}()
	r := NewTTY(tty, Options{})
	line := "configure: checking whether the C compiler works... yes"
	time.Sleep(300 * time.Millisecond) // the view has started and read the terminal's size
	r.Event(event.Event{Kind: event.Log, Message: line})
	r.Close()
	tty.Close()
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	if got := out.String(); !strings.Contains(got, line) {
		t.Errorf("the line was cut or wrapped on a terminal of unknown size:\n%q", got)
	}
}
