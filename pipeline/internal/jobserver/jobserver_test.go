package jobserver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	s, err := New(2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := s.Acquire(short); err == nil {
		t.Fatal("a third token out of two")
	}
	s.Release()
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMakeSharesTheTokens runs GNU make with the server in MAKEFLAGS, as a
// step does, and checks that it never runs more jobs at once than the
// tokens allow (its own implicit slot being the one coach took).
func TestMakeSharesTheTokens(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dir := t.TempDir()
	// Eight jobs of 0.3 s each; each notes how many run with it.
	var mk strings.Builder
	mk.WriteString("all:")
	for i := range 8 {
		mk.WriteString(" j" + string(rune('a'+i)))
	}
	mk.WriteString("\n")
	for i := range 8 {
		mk.WriteString("j" + string(rune('a'+i)) + ":\n\t@mkdir -p run && touch run/$@ && ls run | wc -l >> peaks && sleep 0.3 && rm run/$@\n")
	}
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk.String()), 0o644)
	for _, tokens := range []int{1, 3} {
		os.Remove(filepath.Join(dir, "peaks"))
		s, err := New(tokens)
		if err != nil {
			t.Fatal(err)
		}
		s.Acquire(context.Background()) // the build's own slot
		r, w, err := s.ChildFiles()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("make", "-C", dir)
		cmd.ExtraFiles = []*os.File{r, w}
		cmd.Env = append(os.Environ(), "MAKEFLAGS="+s.MakeFlags(3, 4))
		out, err := cmd.CombinedOutput()
		r.Close()
		w.Close()
		s.Close()
		if err != nil || strings.Contains(string(out), "warning") {
			t.Fatalf("make with %d tokens: %v\n%s", tokens, err, out)
		}
		data, _ := os.ReadFile(filepath.Join(dir, "peaks"))
		peak := 0
		for _, l := range strings.Fields(string(data)) {
			n := 0
			for _, c := range l {
				n = n*10 + int(c-'0')
			}
			peak = max(peak, n)
		}
		if peak > tokens || (tokens > 1 && peak < 2) {
			t.Errorf("with %d tokens make ran up to %d jobs at once", tokens, peak)
		}
	}
}
