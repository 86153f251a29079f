package pkg

import (
	"io"
)

// asyncWriter hands what is written to it to another goroutine, in
// chunks, so the writer behind it (a compressor) runs on another core
// while the producer reads, digests and frames the next files. It keeps
// at most depth chunks in flight.
type asyncWriter struct {
	w     io.Writer
	size  int
	buf   []byte
	full  chan []byte
	empty chan []byte
	done  chan error
	err   error
	shut  bool
}

func newAsyncWriter(w io.Writer, size, depth int) *asyncWriter {
	a := &asyncWriter{w: w, size: size, full: make(chan []byte, depth), empty: make(chan []byte, depth+1), done: make(chan error, 1)}
	for range depth + 1 {
		a.empty <- make([]byte, 0, size)
	}
	a.buf = <-a.empty
	go func() {
		var err error
		for b := range a.full {
			if err == nil {
				_, err = a.w.Write(b)
			}
			a.empty <- b[:0]
		}
		a.done <- err
	}()
	return a
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), a.size-len(a.buf))
		a.buf = append(a.buf, p[:k]...)
		p = p[k:]
		if len(a.buf) == a.size {
			a.full <- a.buf
			a.buf = <-a.empty
		}
	}
	return n, nil
}

// Close passes on what is left, waits for the other goroutine, and
// returns the first error the writer behind returned.
func (a *asyncWriter) Close() error {
	if !a.shut {
		a.shut = true
		if len(a.buf) > 0 {
			a.full <- a.buf
		}
		close(a.full)
		a.err = <-a.done
	}
	return a.err
}
