// Package jobserver is a GNU make job server that coach runs for the
// builds of a target: a pipe holding one token per core of the budget.
// coach takes a token for each component it starts (it stands for the
// implicit job slot of that build's make), and every make the build's
// steps run takes more from the same pipe for its parallel jobs, so that
// all builds running at once, and all their makes, use at most the budget.
//
// A step finds the server in MAKEFLAGS, in the file-descriptor form
// (--jobserver-auth=R,W), which GNU make 4.3 and 4.4 both read; the runner
// passes the two descriptors into the sandbox at the numbers MakeFlags
// names.
package jobserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Server is a job server with a fixed number of tokens.
type Server struct {
	r, w   *os.File
	tokens int
	mu     sync.Mutex
	closed bool
}

// New makes a server holding tokens tokens (at least 1).
func New(tokens int) (*Server, error) {
	tokens = max(tokens, 1)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, tokens)
	for i := range buf {
		buf[i] = '+'
	}
	if _, err := w.Write(buf); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return &Server{r: r, w: w, tokens: tokens}, nil
}

// Acquire takes a token, waiting until one is free or ctx is done.
func (s *Server) Acquire(ctx context.Context) error {
	b := make([]byte, 1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.r.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := s.r.Read(b)
		if n == 1 {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("job server: %w", err)
		}
	}
}

// Release gives a token back.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.w.Write([]byte{'+'})
	}
}

// ChildFiles opens the pipe's read and write ends again, for one step:
// descriptions of their own, so that the blocking mode a child's
// descriptors are put in does not reach the server's. The caller closes
// them once the step has started.
func (s *Server) ChildFiles() (r, w *os.File, err error) {
	r, err = reopen(s.r, os.O_RDONLY)
	if err != nil {
		return nil, nil, fmt.Errorf("job server: %w", err)
	}
	w, err = reopen(s.w, os.O_WRONLY)
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("job server: %w", err)
	}
	return r, w, nil
}

// MakeFlags is the MAKEFLAGS of a step that has the read end at fd rfd
// and the write end at fd wfd.
func (s *Server) MakeFlags(rfd, wfd int) string {
	return fmt.Sprintf("-j%d --jobserver-auth=%d,%d", s.tokens, rfd, wfd)
}

// Close closes the pipe.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.r.Close()
		s.w.Close()
	}
}

// reopen opens f's pipe again through /proc/self/fd, without calling Fd
// (which would put f into blocking mode and end its deadlines).
func reopen(f *os.File, flag int) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var out *os.File
	var oerr error
	err = rc.Control(func(fd uintptr) {
		out, oerr = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), flag, 0)
	})
	if err != nil {
		return nil, err
	}
	return out, oerr
}
