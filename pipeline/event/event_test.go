package event

import (
	"log/slog"
	"reflect"
	"testing"
)

func TestLineWriter(t *testing.T) {
	var got []string
	w := NewLineWriter(func(l string) { got = append(got, l) })
	for _, chunk := range []string{"one\ntw", "o\r\n", "", "three\nfour"} {
		w.Write([]byte(chunk))
	}
	if want := []string{"one", "two", "three"}; !reflect.DeepEqual(got, want) {
		t.Errorf("before Flush: %q, want %q", got, want)
	}
	w.Flush()
	if want := []string{"one", "two", "three", "four"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after Flush: %q, want %q", got, want)
	}
}

func TestHandlerMakesEvents(t *testing.T) {
	var got []Event
	log := NewLogger(func(e Event) { got = append(got, e) }, slog.LevelInfo)
	log.Debug("dropped")
	log.With("target", "debian-12").WithGroup("g").Info("built", "component", "zlib", "n", 3)
	log.Warn("careful", "why", "a b")
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2: %+v", len(got), got)
	}
	e := got[0]
	if e.Kind != Log || e.Level != "INFO" || e.Message != "built" || e.Target != "debian-12" {
		t.Errorf("first event: %+v", e)
	}
	if want := []Attr{{"target", "debian-12"}, {"g.component", "zlib"}, {"g.n", "3"}}; !reflect.DeepEqual(e.Attrs, want) {
		t.Errorf("attrs %+v, want %+v", e.Attrs, want)
	}
	if got[1].Kind != Warning || AttrString(got[1].Attrs) != `why="a b"` {
		t.Errorf("second event: %+v (%s)", got[1], AttrString(got[1].Attrs))
	}
}
