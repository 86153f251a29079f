package publish

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/pkg"
)

// TestPublishHelper publishes $COACH_PUBLISH_DEBS into $COACH_PUBLISH_REPO
// with the key in $COACH_PUBLISH_KEY: the process TestPublishKilled kills.
func TestPublishHelper(t *testing.T) {
	repo := os.Getenv("COACH_PUBLISH_REPO")
	if repo == "" {
		t.Skip("helper process for TestPublishKilled")
	}
	s, err := pkg.LoadSigner(os.Getenv("COACH_PUBLISH_KEY"), "")
	if err != nil {
		t.Fatal(err)
	}
	a := &Apt{Dir: repo, Signer: s, Keep: 3}
	if _, err := a.Add(context.Background(), strings.Fields(os.Getenv("COACH_PUBLISH_DEBS"))); err != nil {
		t.Fatal(err)
	}
}

// aptReads says whether apt-get update reads the repository without an
// error or a warning.
func aptReads(t *testing.T, repo string) (string, bool) {
	t.Helper()
	out, err := apt(t, newState(t, "file://"+repo, filepath.Join(repo, KeyFile)), "apt-get", "update")
	return out, err == nil && !strings.Contains(out, "W:") && !strings.Contains(out, "E:")
}

// TestPublishKilled kills publications at random points (20 trials, each
// a new iteration of a package of a few MiB) and checks after each that
// apt still reads the repository without an error, and that the next
// publication goes through and leaves no temporary file behind.
func TestPublishKilled(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get is not installed")
	}
	if testing.Short() {
		t.Skip("20 killed processes")
	}
	s, keyFile := testKey(t)
	repo := t.TempDir()
	a := &Apt{Dir: repo, Signer: s, Keep: 3}
	if _, err := a.Add(context.Background(), []string{bigDeb(t, 1)}); err != nil {
		t.Fatal(err)
	}
	helper := func(deb string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPublishHelper$")
		cmd.Env = append(os.Environ(), "COACH_PUBLISH_REPO="+repo, "COACH_PUBLISH_KEY="+keyFile, "COACH_PUBLISH_DEBS="+deb)
		return cmd
	}
	// How long a whole publication takes here: the kills land in that
	// span, so that most of them interrupt one, on any machine.
	start := time.Now()
	if out, err := helper(bigDeb(t, 2)).CombinedOutput(); err != nil {
		t.Fatalf("a publication: %v\n%s", err, out)
	}
	span := time.Since(start)
	rng := rand.New(rand.NewPCG(1, 2))
	killedMidway := 0
	for trial := range 20 {
		cmd := helper(bigDeb(t, trial+3))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(span))))
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killedMidway++
		}
		if out, ok := aptReads(t, repo); !ok {
			t.Fatalf("trial %d: after the kill apt-get update fails:\n%s", trial, out)
		}
	}
	t.Logf("%d of 20 publications were killed before they finished (a whole one takes %s)", killedMidway, span.Round(time.Millisecond))
	if killedMidway == 0 {
		t.Error("no publication was killed before it finished: the trials test nothing")
	}
	if _, err := a.Add(context.Background(), []string{bigDeb(t, 30)}); err != nil {
		t.Fatal(err)
	}
	if out, ok := aptReads(t, repo); !ok {
		t.Fatalf("after the trials, a publication left a repository apt does not read:\n%s", out)
	}
	filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("a temporary file is left: %s", p)
		}
		return nil
	})
}

// TestConcurrentPublications: two publications into one repository at
// once both go through, one after the other, and the index names both
// packages.
func TestConcurrentPublications(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get is not installed")
	}
	s := testSigner(t)
	repo := t.TempDir()
	debs := []string{testDeb(t, "first", 1, "debian-12"), testDeb(t, "second", 1, "debian-12")}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, d := range debs {
		wg.Go(func() {
			_, errs[i] = (&Apt{Dir: repo, Signer: s}).Add(context.Background(), []string{d})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if out, ok := aptReads(t, repo); !ok {
		t.Fatalf("apt-get update:\n%s", out)
	}
	idx, _ := filepath.Glob(filepath.Join(repo, "dists/bookworm/main/binary-*/Packages"))
	data, _ := os.ReadFile(idx[0])
	for _, name := range []string{"first", "second"} {
		if !strings.Contains(string(data), "Package: "+name+"\n") {
			t.Errorf("the index lacks %s:\n%s", name, data)
		}
	}
}

// bigDeb is an iteration of a package with a few MiB of incompressible
// content, so that a publication takes long enough to be killed in it.
func bigDeb(t *testing.T, iteration int) string {
	t.Helper()
	return testDebWith(t, "bulky", iteration, func(tree string) {
		data := make([]byte, 4<<20)
		rand.NewChaCha8([32]byte{byte(iteration)}).Read(data)
		os.WriteFile(filepath.Join(tree, "share", "blob-"+strconv.Itoa(iteration)), data, 0o644)
	})
}

// TestRepositoryIsReproducible: the same packages, key and date give the
// same repository, byte for byte, whatever the order they were published
// in, but for the signatures (go-crypto salts every signature, by design)
// and the by-hash history of earlier indexes.
func TestRepositoryIsReproducible(t *testing.T) {
	s := testSigner(t)
	debs := []string{testDeb(t, "first", 1, "debian-12"), testDeb(t, "second", 1, "debian-12"), testDeb(t, "first", 2, "debian-12")}
	rpms := []string{testRPM(t, "first", 1, s)}
	trees := make([]map[string]string, 2)
	for i := range trees {
		repo := t.TempDir()
		now := func() time.Time { return epoch }
		// In two publications, in another order the second time.
		order := debs
		if i == 1 {
			order = []string{debs[2], debs[0], debs[1]}
		}
		if _, err := (&Apt{Dir: repo, Signer: s, Now: now}).Add(context.Background(), order[:2]); err != nil {
			t.Fatal(err)
		}
		if _, err := (&Apt{Dir: repo, Signer: s, Now: now}).Add(context.Background(), order[2:]); err != nil {
			t.Fatal(err)
		}
		if _, err := (&RPM{Dir: repo, Signer: s, Now: now}).Add(context.Background(), rpms); err != nil {
			t.Fatal(err)
		}
		trees[i] = map[string]string{}
		filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			switch d.Name() {
			case "InRelease", "Release.gpg", "repomd.xml.asc":
				return nil
			}
			if strings.Contains(p, "/by-hash/") {
				return nil
			}
			rel, _ := filepath.Rel(repo, p)
			trees[i][rel] = sha(t, p)
			return nil
		})
	}
	if len(trees[0]) < 10 {
		t.Fatalf("the repository has only %d files", len(trees[0]))
	}
	for p, h := range trees[0] {
		if trees[1][p] != h {
			t.Errorf("%s differs between the two publications", p)
		}
	}
	for p := range trees[1] {
		if _, ok := trees[0][p]; !ok {
			t.Errorf("%s is only in the second publication", p)
		}
	}
}

// TestKeyRotation: publishing with a new key signs every suite and rpm
// repository again, even with nothing new in them, and apt then reads the
// repository with only the new key; the public key is the new one.
func TestKeyRotation(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get is not installed")
	}
	ctx := context.Background()
	oldKey, newKey := testSigner(t), testSigner(t)
	repo := t.TempDir()
	deb12, deb13 := testDeb(t, "first", 1, "debian-12"), testDeb(t, "first", 1, "debian-13")
	rpm := testRPM(t, "first", 1, oldKey)
	if _, err := (&Apt{Dir: repo, Signer: oldKey}).Add(ctx, []string{deb12, deb13}); err != nil {
		t.Fatal(err)
	}
	if _, err := (&RPM{Dir: repo, Signer: oldKey}).Add(ctx, []string{rpm}); err != nil {
		t.Fatal(err)
	}
	// Only debian-12's package again, with the new key: both suites are
	// signed again.
	res, err := (&Apt{Dir: repo, Signer: newKey}).Add(ctx, []string{deb12})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Suites, " ") != "bookworm trixie" {
		t.Errorf("after the rotation, signed again: %v, want bookworm and trixie", res.Suites)
	}
	rres, err := (&RPM{Dir: repo, Signer: newKey}).Add(ctx, []string{rpm})
	if err != nil {
		t.Fatal(err)
	}
	if len(rres.Repos) != 1 {
		t.Errorf("after the rotation the rpm repository was not signed again: %+v", rres)
	}
	for _, f := range []string{"dists/bookworm/InRelease", "dists/trixie/InRelease", "dists/bookworm/Release.gpg", RepoDir("el9", rpmArch()) + "/repodata/repomd.xml.asc"} {
		if !signedBy(filepath.Join(repo, f), newKey) {
			t.Errorf("%s is not signed by the new key", f)
		}
	}
	pub, _ := newKey.PublicKey()
	if have, _ := os.ReadFile(filepath.Join(repo, KeyFile)); string(have) != string(pub) {
		t.Error("the repository's public key is not the new key")
	}
	if out, ok := aptReads(t, repo); !ok {
		t.Errorf("apt with the new key only:\n%s", out)
	}
}
