package spec

import (
	"strings"
	"testing"
)

func TestAddVersion(t *testing.T) {
	const sum = "1111111111111111111111111111111111111111111111111111111111111111"
	for _, c := range []struct {
		name, src, want string
	}{
		{"block, one entry, comments kept", `# zlib: a comment that must stay.
name: zlib
versions:
  # the Debian repack
  - version: 1.2.13
    url: '{{mirror "debian"}}/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2'
    sha256: 71fe  # pinned
# how to build it
build:
  - make
`, `# zlib: a comment that must stay.
name: zlib
versions:
  # the Debian repack
  - version: 1.2.13
    url: '{{mirror "debian"}}/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2'
    sha256: 71fe  # pinned
  - version: 1.3.1
    url: '{{mirror "debian"}}/pool/main/z/zlib/zlib_1.3.1.dfsg.orig.tar.bz2'
    sha256: ` + sum + `
# how to build it
build:
  - make
`},
		{"block, descending: before the first", `name: x
versions:
    - version: 2.0.0
      url: https://example.com/x-2.0.0.tar.gz
      sha256: aa
    - version: 1.0.0
      url: https://example.com/x-1.0.0.tar.gz
      sha256: bb
build: [make]
`, `name: x
versions:
    - version: 3.0.0
      url: https://example.com/x-3.0.0.tar.gz
      sha256: ` + sum + `
    - version: 2.0.0
      url: https://example.com/x-2.0.0.tar.gz
      sha256: aa
    - version: 1.0.0
      url: https://example.com/x-1.0.0.tar.gz
      sha256: bb
build: [make]
`},
		{"flow entries, last key, no newline at the end", `name: x
build: [make]
versions:
  - {version: 1.0.0, url: "https://example.com/x-1.0.0.tar.gz", sha256: bb}`, `name: x
build: [make]
versions:
  - {version: 1.0.0, url: "https://example.com/x-1.0.0.tar.gz", sha256: bb}
  - {version: 1.1.0, url: https://example.com/x-1.1.0.tar.gz, sha256: ` + sum + `}
`},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := "1.3.1"
			url := `{{mirror "debian"}}/pool/main/z/zlib/zlib_1.3.1.dfsg.orig.tar.bz2`
			switch {
			case strings.Contains(c.name, "descending"):
				v, url = "3.0.0", "https://example.com/x-3.0.0.tar.gz"
			case strings.Contains(c.name, "flow"):
				v, url = "1.1.0", "https://example.com/x-1.1.0.tar.gz"
			}
			got, err := AddVersion([]byte(c.src), v, url, sum)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
	if _, err := AddVersion([]byte("name: x\nversions: []\n"), "1.0.0", "u", sum); err == nil {
		t.Error("an empty flow list was edited")
	}
}
