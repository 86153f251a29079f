package pkg

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/target"
)

// gpgKey makes a passphrase-protected signing key in a throwaway keyring
// and returns the armored private key file, the public key file and the
// keyring home.
func gpgKey(t *testing.T, pass string) (priv, pub, home string) {
	t.Helper()
	need(t, "gpg")
	home = t.TempDir()
	gpg := func(args ...string) string {
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", pass}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	gpg("--quick-gen-key", "coach test <test@example.com>", "rsa2048", "sign", "never")
	priv, pub = filepath.Join(home, "priv.asc"), filepath.Join(home, "pub.asc")
	os.WriteFile(priv, []byte(gpg("--armor", "--export-secret-keys", "test@example.com")), 0o600)
	os.WriteFile(pub, []byte(gpg("--armor", "--export", "test@example.com")), 0o644)
	return priv, pub, home
}

func TestSigning(t *testing.T) {
	need(t, "rpm", "ar", "strip")
	const pass = "correct horse battery staple"
	priv, pub, home := gpgKey(t, pass)
	t.Setenv("COACH_TEST_PASSPHRASE", pass)
	root, tree, p := fixture(t)
	out := t.TempDir()
	var trees []TargetTree
	for _, n := range []string{"debian-12", "el9"} {
		tg, _ := target.Builtin(n)
		trees = append(trees, TargetTree{Target: tg, Tree: tree})
	}
	rel, err := WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: comps(), Trees: trees, Arch: "amd64", OutDir: out,
		MTime: epoch, SignKey: priv, PassEnv: "COACH_TEST_PASSPHRASE"})
	if err != nil {
		t.Fatal(err)
	}
	deb, rpm := rel.Artifacts[0], rel.Artifacts[1]
	if !deb.Signed || !rpm.Signed {
		t.Error("artifacts not marked signed")
	}

	// rpm: the signature verifies against the imported public key.
	db := t.TempDir()
	run(t, "rpm", "--dbpath", db, "--import", pub)
	if got := run(t, "rpm", "--dbpath", db, "-K", rpm.Path); !strings.Contains(got, "signatures OK") {
		t.Errorf("rpm -K: %s", got)
	}
	// deb (debsign style): _gpgorigin signs debian-binary + control + data.
	x := t.TempDir()
	cmd := exec.Command("ar", "x", deb.Path)
	cmd.Dir = x
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ar x: %v %s", err, b)
	}
	members, _ := filepath.Glob(filepath.Join(x, "*"))
	var signed []string
	for _, m := range []string{"debian-binary", "control.tar.gz", "data.tar.zst"} {
		signed = append(signed, filepath.Join(x, m))
	}
	verify := exec.Command("sh", append([]string{"-c", `cat "$@" | gpg --homedir "$0" --verify ` + filepath.Join(x, "_gpgorigin") + ` -`, home}, signed...)...)
	if b, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(b), "Good signature") {
		t.Errorf("deb signature (members %v): %v\n%s", members, err, b)
	}
	// The passphrase appears in nothing written.
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if b, _ := os.ReadFile(filepath.Join(out, e.Name())); strings.Contains(string(b), pass) {
			t.Errorf("%s contains the passphrase", e.Name())
		}
	}
	// A wrong passphrase fails the release, naming no secret.
	t.Setenv("COACH_TEST_PASSPHRASE", "wrong")
	_, err = WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: comps(), Trees: trees, Arch: "amd64", OutDir: t.TempDir(),
		MTime: epoch, SignKey: priv, PassEnv: "COACH_TEST_PASSPHRASE"})
	if err == nil || strings.Contains(err.Error(), pass) {
		t.Errorf("wrong passphrase: %v", err)
	}
}
