package publish

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/internal/durable"
)

// Bucket is a repository's home in S3-compatible object storage:
// s3://bucket/prefix. The repository is published in a local directory
// first (Pull brings what the bucket has that the directory lacks), then
// Push uploads what changed, in the order that keeps clients safe.
//
// Credentials come from the standard environment: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or the shared files
// ~/.aws/credentials with AWS_PROFILE; the endpoint from
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (default s3.amazonaws.com), the
// region from AWS_REGION or AWS_DEFAULT_REGION.
type Bucket struct {
	client *minio.Client
	bucket string
	prefix string // "" or "a/b/"
	// URL is the bucket's s3:// address as given.
	URL string
}

// SyncResult counts what a Push did.
type SyncResult struct {
	Uploaded      int   `json:"uploaded"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	Deleted       int   `json:"deleted"`
	Unchanged     int   `json:"unchanged"`
}

// OpenBucket connects to s3://bucket/prefix.
func OpenBucket(rawURL string) (*Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an s3://bucket/prefix address", rawURL)
	}
	endpoint := firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	secure := true
	host := "s3.amazonaws.com"
	if endpoint != "" {
		e, err := url.Parse(endpoint)
		if err != nil || e.Host == "" {
			return nil, fmt.Errorf("AWS_ENDPOINT_URL %q is not a URL", endpoint)
		}
		host, secure = e.Host, e.Scheme != "http"
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	})
	client, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: firstEnv("AWS_REGION", "AWS_DEFAULT_REGION"), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Bucket{client: client, bucket: u.Host, prefix: prefix, URL: rawURL}, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// remoteObject is what a listing says of an object.
type remoteObject struct {
	size     int64
	etag     string
	modified time.Time
}

func (b *Bucket) list(ctx context.Context) (map[string]remoteObject, error) {
	out := map[string]remoteObject{}
	for o := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", b.URL, o.Err)
		}
		out[strings.TrimPrefix(o.Key, b.prefix)] = remoteObject{size: o.Size, etag: strings.Trim(o.ETag, `"`), modified: o.LastModified}
	}
	return out, nil
}

// localFiles are the repository's files, by slash path: what Push
// uploads (the lock and temporary files are not the repository's).
func localFiles(dir string) (map[string]int64, error) {
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = st.Size()
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return out, err
}

// same says whether the local file is the object: same size, and for a
// file whose name does not fix its content, the same MD5 (a single-part
// upload's ETag).
func same(dir, key string, size int64, o remoteObject) bool {
	if o.size != size {
		return false
	}
	if immutable(key) {
		return true
	}
	sum, err := digest.FileHex(filepath.Join(dir, filepath.FromSlash(key)), md5.New())
	return err == nil && sum == o.etag
}

// immutable keys name content that never changes under them: packages
// (never replaced) and metadata named by its checksum.
func immutable(key string) bool {
	return strings.HasPrefix(key, "pool/") || strings.Contains(key, "/by-hash/") ||
		strings.Contains(key, "/Packages/") || (strings.Contains(key, "/repodata/") && !strings.HasPrefix(path.Base(key), "repomd.xml"))
}

// stage orders uploads: packages, then metadata named by content, then
// the indexes and the key, then the signed files, with the file a client
// reads first (InRelease, repomd.xml.asc) last.
func stage(key string) int {
	base := path.Base(key)
	switch {
	case strings.HasPrefix(key, "pool/") || strings.Contains(key, "/Packages/"):
		return 0
	case immutable(key):
		return 1
	case base == "Release" || base == "Release.gpg" || base == "repomd.xml":
		return 3
	case base == "InRelease" || base == "repomd.xml.asc":
		return 4
	}
	return 2
}

// Pull downloads into dir every object of the bucket that dir lacks or
// has with other bytes, so that a publication in dir starts from what
// users see. It returns how many objects it downloaded.
func (b *Bucket) Pull(ctx context.Context, dir string) (int, error) {
	remote, err := b.list(ctx)
	if err != nil {
		return 0, err
	}
	local, err := localFiles(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range slices.Sorted(maps.Keys(remote)) {
		if size, ok := local[key]; ok && same(dir, key, size, remote[key]) {
			continue
		}
		if !fs.ValidPath(key) {
			return n, fmt.Errorf("pull %s: object %q is not a path coach writes", b.URL, key)
		}
		obj, err := b.client.GetObject(ctx, b.bucket, b.prefix+key, minio.GetObjectOptions{})
		if err != nil {
			return n, fmt.Errorf("pull %s: %w", key, err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			obj.Close()
			return n, err
		}
		err = durable.WriteFrom(dst, io.LimitReader(obj, remote[key].size), 0o644)
		obj.Close()
		if err != nil {
			return n, fmt.Errorf("pull %s: %w", key, err)
		}
		n++
	}
	return n, nil
}

// Push uploads what dir has and the bucket lacks or has with other bytes,
// stage by stage, then deletes the objects dir no longer has (packages
// dropped by Keep, metadata two publications old).
func (b *Bucket) Push(ctx context.Context, dir string) (*SyncResult, error) {
	remote, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	local, err := localFiles(dir)
	if err != nil {
		return nil, err
	}
	res := &SyncResult{}
	byStage := map[int][]string{}
	for key, size := range local {
		if o, ok := remote[key]; ok && same(dir, key, size, o) {
			res.Unchanged++
			continue
		}
		byStage[stage(key)] = append(byStage[stage(key)], key)
	}
	for s := 0; s <= 4; s++ {
		keys := byStage[s]
		slices.Sort(keys)
		if s == 3 {
			// Object storage says Last-Modified to the second, and apt asks
			// If-Modified-Since: a Release replaced within the second of
			// the one before would look unchanged to a client that read
			// that one. The signed files wait for the next second.
			for _, key := range keys {
				if o, ok := remote[key]; ok && time.Since(o.modified) < 1100*time.Millisecond {
					time.Sleep(1100*time.Millisecond - time.Since(o.modified))
				}
			}
		}
		for _, key := range keys {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			p := filepath.Join(dir, filepath.FromSlash(key))
			info, err := b.client.FPutObject(ctx, b.bucket, b.prefix+key, p, minio.PutObjectOptions{
				ContentType: contentType(key),
				// One part: the ETag is the MD5 the next Push compares.
				PartSize: 5 << 30,
			})
			if err != nil {
				return res, fmt.Errorf("push %s: %w", key, err)
			}
			res.Uploaded++
			res.UploadedBytes += info.Size
		}
	}
	var gone []string
	for key := range remote {
		if _, ok := local[key]; !ok {
			gone = append(gone, key)
		}
	}
	slices.Sort(gone)
	for _, key := range gone {
		if err := b.client.RemoveObject(ctx, b.bucket, b.prefix+key, minio.RemoveObjectOptions{}); err != nil {
			return res, fmt.Errorf("push: remove %s: %w", key, err)
		}
		res.Deleted++
	}
	return res, nil
}

func contentType(key string) string {
	switch path.Ext(key) {
	case ".deb":
		return "application/vnd.debian.binary-package"
	case ".rpm":
		return "application/x-rpm"
	case ".gz":
		return "application/gzip"
	case ".xz":
		return "application/x-xz"
	case ".xml":
		return "application/xml"
	case ".asc", ".gpg":
		return "application/pgp-signature"
	}
	return "text/plain"
}
