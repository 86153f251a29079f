package event

import (
	"errors"
	"testing"
)

func TestStageBracketsWork(t *testing.T) {
	for _, tc := range []struct {
		name    string
		msg     string
		err     error
		wantErr string
	}{
		{"ok", "3 components", nil, ""},
		{"failed", "", errors.New("first line\nsecond line"), "first line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Event
			var s Sink = func(e Event) { got = append(got, e) }
			ran := false
			err := s.Stage(StageBuild, "debian-12", func() (string, error) {
				ran = true
				if len(got) != 1 || got[0].Kind != StageStarted {
					t.Errorf("before the work: %+v, want one StageStarted", got)
				}
				return tc.msg, tc.err
			})
			if !ran || err != tc.err {
				t.Fatalf("ran %v, err %v", ran, err)
			}
			if len(got) != 2 {
				t.Fatalf("events: %+v", got)
			}
			f := got[1]
			if f.Kind != StageFinished || f.Stage != StageBuild || f.Target != "debian-12" || f.Message != tc.msg || f.Error != tc.wantErr || f.Time.IsZero() {
				t.Errorf("finish event %+v", f)
			}
		})
	}
}
