package publish

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/internal/fixture"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Binary is Versity's S3 gateway: $COACH_TEST_S3, else versitygw on
// PATH, else where .ci/run installs it once per machine (.ci/build-s3).
func s3Binary() string {
	if p := os.Getenv("COACH_TEST_S3"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return "/var/tmp/coach-tools/versitygw"
}

// publicRead is the bucket policy of a public repository bucket: anyone
// may read its objects, as apt does, and only the credentials write.
const publicRead = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
  "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::%s/*"]}]}`

// startS3 starts a real S3 server (versitygw over a directory) on
// 127.0.0.1 with a bucket, credentials coach uses from the AWS_*
// environment, and anonymous read through a bucket policy (as a public
// repository bucket is served). It returns the endpoint.
func startS3(t *testing.T, bucket string) string {
	t.Helper()
	bin := s3Binary()
	// .ci/run may still be building it while go test runs.
	if ok, err := fixture.Await(bin, 20*time.Minute); err != nil {
		t.Fatal(err)
	} else if !ok {
		t.Skipf("Versity's S3 gateway is not installed (%s): .ci/run installs it with .ci/build-s3", bin)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--port", endpoint, "--access", "coachtest", "--secret", "coachtestsecret", "--quiet", "posix", "--", data)
	logf, _ := os.Create(filepath.Join(dir, "s3.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
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
			log, _ := os.ReadFile(filepath.Join(dir, "s3.log"))
			t.Fatalf("the S3 server did not come up: %v\n%s", err, tailString(string(log), 3000))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := client.SetBucketPolicy(context.Background(), bucket, fmt.Sprintf(publicRead, bucket)); err != nil {
		t.Fatalf("make the bucket public for reading: %v", err)
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
