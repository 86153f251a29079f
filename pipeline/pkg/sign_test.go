package pkg

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	written := 0
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		written++
		if b, _ := os.ReadFile(p); strings.Contains(string(b), pass) {
			t.Errorf("%s contains the passphrase", p)
		}
		return nil
	})
	if written < 3 {
		t.Errorf("looked for the passphrase in %d files", written)
	}
	// A wrong passphrase fails the release, naming no secret.
	t.Setenv("COACH_TEST_PASSPHRASE", "wrong")
	_, err = WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: comps(), Trees: trees, Arch: "amd64", OutDir: t.TempDir(),
		MTime: epoch, SignKey: priv, PassEnv: "COACH_TEST_PASSPHRASE"})
	if err == nil || strings.Contains(err.Error(), pass) {
		t.Errorf("wrong passphrase: %v", err)
	}
}

// TestSignedDiffersOnlyInSignature writes the same release signed and
// unsigned: a signed deb is the unsigned deb with a _gpgorigin member
// appended, and a signed rpm is the unsigned rpm with two more entries
// in its signature header (the lead, header and payload are the same
// bytes). Both come from coach's writers, and rpm checks the signature.
func TestSignedDiffersOnlyInSignature(t *testing.T) {
	need(t, "rpm", "strip")
	const pass = "pass"
	priv, pub, _ := gpgKey(t, pass)
	t.Setenv("COACH_TEST_PASSPHRASE", pass)
	root, tree, p := fixture(t)
	var trees []TargetTree
	for _, n := range []string{"debian-12", "el9"} {
		tg, _ := target.Builtin(n)
		trees = append(trees, TargetTree{Target: tg, Tree: tree})
	}
	release := func(key string) *Release {
		rel, err := WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: comps(), Trees: trees, Arch: "amd64", OutDir: t.TempDir(),
			MTime: epoch, SignKey: key, PassEnv: "COACH_TEST_PASSPHRASE"})
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	signed, unsigned := release(priv), release("")
	sdeb, udeb := must(os.ReadFile(signed.Artifacts[0].Path)), must(os.ReadFile(unsigned.Artifacts[0].Path))
	if !bytes.HasPrefix(sdeb, udeb) {
		t.Fatal("the signed deb does not begin with the unsigned deb's bytes")
	}
	tail := sdeb[len(udeb):]
	if len(tail) < 60 || strings.TrimRight(string(tail[:16]), " ") != "_gpgorigin" || !bytes.Contains(tail, []byte("BEGIN PGP SIGNATURE")) {
		t.Errorf("after the unsigned deb's bytes comes %q, not a _gpgorigin member", tail[:min(len(tail), 80)])
	}

	srpm, urpm := must(os.ReadFile(signed.Artifacts[1].Path)), must(os.ReadFile(unsigned.Artifacts[1].Path))
	sEnd, sTags := rpmSignatureHeader(t, srpm)
	uEnd, uTags := rpmSignatureHeader(t, urpm)
	if !bytes.Equal(srpm[:96], urpm[:96]) || !bytes.Equal(srpm[sEnd:], urpm[uEnd:]) {
		t.Error("the signed rpm's lead, header or payload differ from the unsigned rpm's")
	}
	if added := slices.DeleteFunc(sTags, func(tag int) bool { return slices.Contains(uTags, tag) }); !slices.Equal(added, []int{rpmSigRSA, rpmSigPGP}) {
		t.Errorf("the signature header adds tags %v, want RSA and PGP signatures", added)
	}
	db := t.TempDir()
	run(t, "rpm", "--dbpath", db, "--import", pub)
	if got := run(t, "rpm", "--dbpath", db, "-Kv", signed.Artifacts[1].Path); !strings.Contains(got, "Header V4 RSA/SHA256 Signature, key ID") || strings.Contains(got, "BAD") {
		t.Errorf("rpm -Kv:\n%s", got)
	}
	if !signed.Artifacts[0].Signed || unsigned.Artifacts[0].Signed {
		t.Error("Signed is not set as written")
	}
}

// rpmSignatureHeader returns where an rpm's (padded) signature header
// ends and the tags it holds.
func rpmSignatureHeader(t *testing.T, b []byte) (end int, tags []int) {
	t.Helper()
	h := b[96:]
	if len(h) < 16 || !bytes.Equal(h[:3], []byte{0x8e, 0xad, 0xe8}) {
		t.Fatal("no signature header after the lead")
	}
	n, size := int(binary.BigEndian.Uint32(h[8:])), int(binary.BigEndian.Uint32(h[12:]))
	for i := range n {
		tags = append(tags, int(binary.BigEndian.Uint32(h[16+16*i:])))
	}
	end = 96 + 16 + 16*n + size
	return end + (8-end%8)%8, tags
}
