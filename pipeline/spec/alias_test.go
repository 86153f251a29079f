package spec

import (
	"fmt"
	"strings"
	"testing"
)

// TestAliasExpansionIsBounded feeds a "billion laughs" document: nine levels
// of ten aliases each. Loading must report problems, not expand 10^9 values.
func TestAliasExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: app\nx0: &a0 {k: v}\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "x%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("custom_targets: {t: {toolchain: *a8}}\nbuild: *a8\n")
	_, err := ParseSoftware("software/app.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("no problems reported")
	}
	if n := len(Problems(err)); n > maxNodes {
		t.Fatalf("%d problems", n)
	}
}
