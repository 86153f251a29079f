package spec

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Pos is a place in a definition file. Line and Col are 1-based; zero means
// "the whole file".
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Problem is one thing wrong with a definition: where, what, and how to fix it.
type Problem struct {
	Pos
	Msg  string `json:"message"`
	Hint string `json:"hint,omitempty"`
}

func (p *Problem) Error() string {
	if p.Hint == "" {
		return p.Pos.String() + ": " + p.Msg
	}
	return p.Pos.String() + ": " + p.Msg + "\n\thint: " + p.Hint
}

// problems collects every problem found while loading, so that a user sees all
// of them at once rather than fixing one per run.
type problems []*Problem

func (ps *problems) add(pos Pos, hint, format string, args ...any) {
	*ps = append(*ps, &Problem{Pos: pos, Msg: bounded(fmt.Sprintf(format, args...)), Hint: bounded(hint)})
}

// maxMessage bounds a problem's message: a value quoted in it may be a
// scalar of megabytes.
const maxMessage = 400

func bounded(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes in all)", msg[:cut], len(msg))
}

// err sorts the problems by position and joins them, or returns nil.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b *Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	sorted = slices.CompactFunc(sorted, func(a, b *Problem) bool { return a.Error() == b.Error() })
	errs := make([]error, len(sorted))
	for i, p := range sorted {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Problems extracts every *Problem from err, which may be a joined error.
// Errors that are not problems are returned as problems without a position.
func Problems(err error) []*Problem {
	if err == nil {
		return nil
	}
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
			return
		}
		if inner := errors.Unwrap(e); inner != nil && !hasOwnMessage(e, inner) {
			walk(inner)
			return
		}
		out = append(out, &Problem{Msg: e.Error()})
	}
	walk(err)
	return out
}

// hasOwnMessage reports whether e says more than the error it wraps, in which
// case it is kept whole rather than unwrapped.
func hasOwnMessage(e, inner error) bool { return e.Error() != inner.Error() }
