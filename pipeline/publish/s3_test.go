package publish

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/internal/fixture"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// weedBinary is SeaweedFS's weed: $COACH_TEST_WEED, else on PATH, else
// where .ci/run builds it once per machine.
func weedBinary() string {
	if p := os.Getenv("COACH_TEST_WEED"); p != "" {
		return p
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	return "/var/tmp/coach-tools/weed"
}

// freePort is a port free on 127.0.0.1, and free 10000 above (weed's
// gRPC ports).
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port+10000 > 65535 {
			continue
		}
		if ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
			ln2.Close()
			return port
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// startS3 starts a real S3 server (SeaweedFS) on 127.0.0.1 with a bucket,
// credentials coach uses from the AWS_* environment, and anonymous read
// (as a public repository bucket is served). It returns the endpoint.
func startS3(t *testing.T, bucket string) string {
	t.Helper()
	weed := weedBinary()
	// .ci/run may still be building it while go test runs.
	if ok, err := fixture.Await(weed, 20*time.Minute); err != nil {
		t.Fatal(err)
	} else if !ok {
		t.Skipf("SeaweedFS's weed is not built (%s): .ci/run builds it", weed)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s3.json")
	os.WriteFile(cfg, []byte(`{"identities":[
  {"name":"coach","credentials":[{"accessKey":"coachtest","secretKey":"coachtestsecret"}],"actions":["Admin","Read","List","Tagging","Write"]},
  {"name":"anonymous","actions":["Read"]}]}`), 0o600)
	s3Port := freePort(t)
	args := []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + dir,
		"-master.port=" + strconv.Itoa(freePort(t)), "-volume.port=" + strconv.Itoa(freePort(t)),
		"-filer", "-filer.port=" + strconv.Itoa(freePort(t)),
		"-s3", "-s3.port=" + strconv.Itoa(s3Port), "-s3.config=" + cfg, "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-volume.max=4", "-master.volumeSizeLimitMB=64"}
	cmd := exec.Command(weed, args...)
	logf, _ := os.Create(filepath.Join(dir, "weed.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	endpoint := "127.0.0.1:" + strconv.Itoa(s3Port)
	client, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4("coachtest", "coachtestsecret", ""), Secure: false, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			t.Fatalf("the S3 server did not come up: %v\n%s", err, tailString(string(log), 3000))
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "coachtest")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "coachtestsecret")
	t.Setenv("AWS_ENDPOINT_URL", "http://"+endpoint)
	t.Setenv("AWS_REGION", "us-east-1")
	return "http://" + endpoint
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestPublishToS3 publishes to a real S3 server and installs from it:
// apt reads the repository straight from the bucket (anonymous HTTP), a
// second publication from a fresh copy uploads only its new objects (10:
// the package, three indexes, their three by-hash copies, Release,
// Release.gpg and InRelease), and a third, the same, uploads nothing.
func TestPublishToS3(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get is not installed")
	}
	endpoint := startS3(t, "packages")
	ctx := context.Background()
	b, err := OpenBucket("s3://packages/stable/repo")
	if err != nil {
		t.Fatal(err)
	}
	s := testSigner(t)
	v1, v2 := testDeb(t, "coachpub", 1, "debian-12"), testDeb(t, "coachpub", 2, "debian-12")
	publishVia := func(local string, deb string) *SyncResult {
		t.Helper()
		if _, err := b.Pull(ctx, local); err != nil {
			t.Fatal(err)
		}
		if _, err := (&Apt{Dir: local, Signer: s}).Add(ctx, []string{deb}); err != nil {
			t.Fatal(err)
		}
		res, err := b.Push(ctx, local)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := publishVia(t.TempDir(), v1)
	t.Logf("first publication: %+v", first)

	// apt, from the bucket over HTTP, with the key fetched from it too.
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	resp, err := http.Get(endpoint + "/packages/stable/repo/" + KeyFile)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the key is not readable from the bucket: %v %v", err, resp)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(keyFile, data, 0o644)
	check := func(want, wantSHA string) {
		t.Helper()
		state := newState(t, endpoint+"/packages/stable/repo", keyFile)
		out, err := apt(t, state, "apt-get", "update")
		if err != nil || strings.Contains(out, "W:") || strings.Contains(out, "E:") {
			t.Fatalf("apt-get update from the bucket: %v\n%s", err, out)
		}
		out, _ = apt(t, state, "apt-cache", "policy", "coachpub")
		if !strings.Contains(out, "Candidate: "+want) {
			t.Fatalf("candidate from the bucket: want %s\n%s", want, out)
		}
		if out, err := apt(t, state, "apt-get", "download", "coachpub"); err != nil {
			t.Fatalf("apt-get download from the bucket: %v\n%s", err, out)
		}
		got, _ := filepath.Glob(filepath.Join(state, "coachpub_*.deb"))
		if len(got) != 1 || sha(t, got[0]) != wantSHA {
			t.Fatalf("downloaded %v, want the published bytes", got)
		}
	}
	check("1.2.0-1+deb12", sha(t, v1))

	// A fresh runner: pulls the bucket, adds v2, uploads what is new.
	local := t.TempDir()
	second := publishVia(local, v2)
	t.Logf("second publication: %+v", second)
	if second.Uploaded != 10 || second.Deleted != 0 {
		t.Errorf("the second publication uploaded %d objects and deleted %d, want 10 and 0", second.Uploaded, second.Deleted)
	}
	check("1.2.0-2+deb12", sha(t, v2))

	third := publishVia(local, v2)
	if third.Uploaded != 0 || third.Deleted != 0 {
		t.Errorf("publishing the same package again uploaded %d objects and deleted %d", third.Uploaded, third.Deleted)
	}
}
