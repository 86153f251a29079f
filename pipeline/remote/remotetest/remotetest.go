// Package remotetest starts a real OCI registry (distribution's registry
// v3) on 127.0.0.1 for the tests of the remote cache, and stops it when the
// test ends.
package remotetest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/internal/fixture"
)

// Binary is distribution's registry: $COACH_TEST_REGISTRY, else on PATH,
// else where .ci/run installs it once per machine.
func Binary() string {
	if p := os.Getenv("COACH_TEST_REGISTRY"); p != "" {
		return p
	}
	if p, err := exec.LookPath("registry"); err == nil {
		return p
	}
	return "/var/tmp/coach-tools/registry"
}

// Registry is a running registry.
type Registry struct {
	// Host is its host:port on 127.0.0.1.
	Host string
	dir  string
	cmd  *exec.Cmd
	log  *os.File
}

// Start runs a registry with storage in a temporary directory; it is
// stopped (and its storage removed) when t ends. The test skips when the
// binary is not built.
func Start(t testing.TB) *Registry {
	t.Helper()
	if !Installed() {
		t.Skipf("distribution's registry is not installed (%s): .ci/run installs it (go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2)", Binary())
	}
	r, err := Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Installed reports whether the registry binary is there, once .ci/run
// has finished installing it (it may still be at it while go test runs).
func Installed() bool {
	ok, _ := fixture.Await(Binary(), 20*time.Minute)
	return ok
}

// Run starts a registry with its storage and log in dir; the caller
// stops it.
func Run(dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Registry{dir: dir}
	if err := r.start(Binary(), 0); err != nil {
		return nil, err
	}
	return r, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (r *Registry) start(bin string, port int) error {
	var err error
	if port == 0 {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	r.Host = "127.0.0.1:" + strconv.Itoa(port)
	cfg := filepath.Join(r.dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(r.dir, "data"), r.Host)), 0o644)
	r.cmd = exec.Command(bin, "serve", cfg)
	if r.log, err = os.Create(filepath.Join(r.dir, "registry.log")); err != nil {
		return err
	}
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	// OpenTelemetry exporters off: nothing leaves the machine.
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	if err := r.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "registry.log"))
			r.Stop()
			return fmt.Errorf("the registry did not come up on %s: %v\n%s", r.Host, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the registry; its storage stays until the test ends.
func (r *Registry) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
	if r.log != nil {
		r.log.Close()
		r.log = nil
	}
}

// Restart starts the registry again on the same port, with the same
// storage.
func (r *Registry) Restart() error {
	r.Stop()
	_, port, _ := net.SplitHostPort(r.Host)
	p, _ := strconv.Atoi(port)
	return r.start(Binary(), p)
}

// Data is the registry's storage directory.
func (r *Registry) Data() string { return filepath.Join(r.dir, "data") }
