package publish

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

// TestInstallAndUpgradeInACleanRoot is what a user of the repository
// does, in a clean Debian 12 root made by coach (confined as verify's
// checks are) whose only source is the published repository, with its key
// in signed-by: apt-get update with no warning, apt-get install, then,
// once the next iteration is published, apt-get upgrade; over file:// (the
// repository mounted read-only, no network), over HTTP from a static
// server on the host's 127.0.0.1, and from a bucket of a real S3 server
// there (the download steps with the host's network, the installs
// without).
func TestInstallAndUpgradeInACleanRoot(t *testing.T) {
	for _, tool := range []string{"bwrap", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	if testing.Short() {
		t.Skip("uses a clean root filesystem")
	}
	ctx := context.Background()
	signer := testSigner(t)
	v1, v2 := testDeb(t, "coachpub", 1, "debian-12"), testDeb(t, "coachpub", 2, "debian-12")
	d12, _ := target.Builtin("debian-12")
	roots := &sandbox.Rootfs{Dir: testroots.Dir()}
	for _, via := range []struct {
		name string
		http bool // the downloads need the host's network
	}{{"file", false}, {"http", true}, {"s3", true}} {
		t.Run(via.name, func(t *testing.T) {
			repo := t.TempDir()
			a := &Apt{Dir: repo, Signer: signer}
			publish := func(deb string) {
				t.Helper()
				if _, err := a.Add(ctx, []string{deb}); err != nil {
					t.Fatal(err)
				}
			}
			uri := "file:/coach/repo"
			switch via.name {
			case "http":
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := &http.Server{Handler: http.FileServer(http.Dir(repo))}
				go srv.Serve(ln)
				defer srv.Close()
				uri = "http://" + ln.Addr().String()
			case "s3":
				// Published to the bucket (through a local copy), served
				// by the S3 server itself.
				uri = startS3(t, "packages") + "/packages/repo"
				b, err := OpenBucket("s3://packages/repo")
				if err != nil {
					t.Fatal(err)
				}
				publish = func(deb string) {
					t.Helper()
					local := t.TempDir()
					if _, err := b.Pull(ctx, local); err != nil {
						t.Fatal(err)
					}
					if _, err := (&Apt{Dir: local, Signer: signer}).Add(ctx, []string{deb}); err != nil {
						t.Fatal(err)
					}
					if _, err := b.Push(ctx, local); err != nil {
						t.Fatal(err)
					}
					// The key, for the root to copy as the others do.
					data, _ := os.ReadFile(filepath.Join(local, KeyFile))
					os.WriteFile(filepath.Join(repo, KeyFile), data, 0o644)
				}
			}
			publish(v1)
			m, done, err := verify.NewScratch(ctx, roots, d12, target.HostArch(), t.TempDir(), []verify.Bind{{Source: repo, Target: "/coach/repo"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer done()
			run := func(script string, net bool) string {
				t.Helper()
				out, err := m.Run(ctx, script, net)
				if err != nil {
					t.Fatalf("%s: %v\n%s", script, err, out)
				}
				return out
			}
			// Only the published repository, its key in signed-by.
			run(`rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* && mkdir -p /etc/apt/keyrings &&
cp /coach/repo/archive-key.asc /etc/apt/keyrings/coach.asc &&
cat > /etc/apt/sources.list.d/coach.sources <<'EOF'
`+SourcesEntry(uri, "bookworm", "", "/etc/apt/keyrings/coach.asc")+`EOF`, false)
			update := func() {
				t.Helper()
				out := run("apt-get update 2>&1", via.http)
				if strings.Contains(out, "W:") || strings.Contains(out, "E:") {
					t.Fatalf("apt-get update warned:\n%s", out)
				}
			}
			update()
			install := func(args string) {
				t.Helper()
				if via.http {
					// The download with the network, the install without.
					run("apt-get "+args+" -y --download-only", true)
					args += " --no-download"
				}
				run("apt-get "+args+" -y", false)
			}
			install("install coachpub")
			if out := run("dpkg-query -W -f '${Version}' coachpub", false); out != "1.2.0-1+deb12" {
				t.Fatalf("installed %q, want 1.2.0-1+deb12", out)
			}
			publish(v2)
			update()
			install("upgrade")
			if out := run("dpkg-query -W -f '${Version}' coachpub", false); out != "1.2.0-2+deb12" {
				t.Fatalf("after the upgrade %q, want 1.2.0-2+deb12", out)
			}
		})
	}
}
