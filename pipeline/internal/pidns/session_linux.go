//go:build linux

package pidns

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Session runs commands one after another in one sandbox: its init lays
// the filesystem out once, then runs each command (entered into the user
// namespace, as Command does) when it is asked to, and reports its exit
// status. A build job's steps share one, so a step costs a bubblewrap
// and not a new layout. Every command of a session still runs in fresh
// namespaces of its own (bubblewrap's), so nothing of one step survives
// into the next but what it wrote.
type Session struct {
	cmd    *Cmd
	ctl    *os.File // the write end of the init's descriptor 3
	status *bufio.Reader
	dir    string
	n      int
	waited chan error
	// marks hears the mark the init writes to the output after each
	// command: once it is read, all of that command's output is too.
	marks chan struct{}
}

// StartSession starts a session's init with layout, the output of its
// commands (stdout and stderr) to stdout, and extra files at descriptors
// 4 and up in every command.
// The command files go in dir, which must exist.
func StartSession(layout *Layout, dir string, stdout io.Writer, extra ...*os.File) (*Session, error) {
	cmd := CommandContext(context.Background(), nil, layout)
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	cr, cw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		cr.Close()
		cw.Close()
		return nil, err
	}
	// The output goes through a pipe of the session's own, read here:
	// a command's output is all read when the mark after it is.
	or, ow, err := os.Pipe()
	if err != nil {
		cr.Close()
		cw.Close()
		sr.Close()
		sw.Close()
		return nil, err
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	mark := "\x1ecoach-" + hex.EncodeToString(nonce) + "\x1e"
	cmd.Args[cmd.nsArg+4] = mark
	cmd.ctl, cmd.ctlW, cmd.status = cr, cw, sw
	cmd.ExtraFiles = extra
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = ow, ow
	err = cmd.Start()
	sw.Close()
	ow.Close()
	if err != nil {
		cw.Close()
		sr.Close()
		or.Close()
		return nil, err
	}
	s := &Session{cmd: cmd, ctl: cw, status: bufio.NewReader(sr), dir: dir, waited: make(chan error, 1), marks: make(chan struct{}, 16)}
	copied := make(chan struct{})
	go func() {
		copyMarked(stdout, or, []byte(mark), s.marks)
		or.Close()
		close(copied)
	}()
	go func() {
		err := cmd.Wait()
		<-copied
		s.waited <- err
		sr.Close()
	}()
	return s, nil
}

// Run runs argv in the session and returns its exit status. When ctx
// ends the session is killed, everything in it with it, and Run returns
// ctx's error; when the session's init is gone (the layout could not be
// made), an error saying so.
func (s *Session) Run(ctx context.Context, argv []string) (int, error) {
	s.n++
	file := filepath.Join(s.dir, fmt.Sprintf("command-%d", s.n))
	if err := os.WriteFile(file, []byte("set -- "+shellQuote(argv)+"\n"), 0o600); err != nil {
		return -1, err
	}
	defer os.Remove(file)
	if _, err := s.ctl.WriteString(file + "\n"); err != nil {
		return -1, s.gone(err)
	}
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := s.status.ReadString('\n')
		got <- result{line, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			return -1, s.gone(r.err)
		}
		code, err := strconv.Atoi(strings.TrimSpace(r.line))
		if err != nil {
			return -1, fmt.Errorf("sandbox: the init reported %q", r.line)
		}
		select {
		case <-s.marks:
		case <-ctx.Done():
			s.kill()
			return -1, ctx.Err()
		}
		return code, nil
	case <-ctx.Done():
		s.kill()
		return -1, ctx.Err()
	}
}

// gone is the error of a session whose init exited.
func (s *Session) gone(cause error) error {
	err := <-s.waited
	s.waited <- err
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 125 {
		return fmt.Errorf("sandbox: the step's filesystem could not be laid out (see the log)")
	}
	if err == nil {
		err = cause
	}
	return fmt.Errorf("sandbox: the session ended: %w", err)
}

func (s *Session) kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
}

// Close ends the session: its init exits once the last command has, and
// with it the layout.
func (s *Session) Close() error {
	s.ctl.Close()
	err := <-s.waited
	s.waited <- err
	return err
}

// shellQuote quotes each word for sh, in single quotes.
func shellQuote(words []string) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("'" + strings.ReplaceAll(w, "'", `'\''`) + "'")
	}
	return b.String()
}

// copyMarked copies r to w, leaving out each occurrence of mark and
// saying so on marks, until r ends.
func copyMarked(w io.Writer, r io.Reader, mark []byte, marks chan<- struct{}) {
	buf := make([]byte, 64<<10)
	var pending []byte
	for {
		n, err := r.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.Index(pending, mark)
			if i < 0 {
				break
			}
			w.Write(pending[:i])
			pending = pending[i+len(mark):]
			marks <- struct{}{}
		}
		// Keep what could be the start of a mark.
		keep := 0
		for k := min(len(mark)-1, len(pending)); k > 0; k-- {
			if bytes.HasPrefix(mark, pending[len(pending)-k:]) {
				keep = k
				break
			}
		}
		if len(pending) > keep {
			w.Write(pending[:len(pending)-keep])
			pending = pending[len(pending)-keep:]
		}
		if err != nil {
			if len(pending) > 0 {
				w.Write(pending)
			}
			return
		}
	}
}
