package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"coach": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
		// expect-exit N args... runs coach and fails unless it exits N.
		"expect-exit": func() {
			want, err := strconv.Atoi(os.Args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "usage: expect-exit <code> <coach args...>")
				os.Exit(2)
			}
			if got := run(os.Args[2:], os.Stdout, os.Stderr); got != want {
				fmt.Fprintf(os.Stderr, "coach exited %d, want %d\n", got, want)
				os.Exit(1)
			}
			os.Exit(0)
		},
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Hooks in txtar archives lose their mode; scripts that need an
			// executable hook chmod it themselves.
			return nil
		},
	})
}
