package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// sourceTag is where the source whose sha256 is hexSum is stored.
func sourceTag(hexSum string) (string, error) { return hexTag("source-", hexSum) }

// OpenSource opens the source file whose sha256 is hexSum: the blob of
// that digest, which the caller hashes as it reads (the fetcher does, as
// for any location). A miss, and a registry that cannot be reached (said
// once), are fs.ErrNotExist; a required cache that cannot be reached is
// an *UnavailableError.
func (c *Cache) OpenSource(ctx context.Context, hexSum string) (io.ReadCloser, int64, error) {
	if _, err := sourceTag(hexSum); err != nil {
		return nil, 0, err
	}
	if !c.usable() {
		return nil, 0, fs.ErrNotExist
	}
	l, err := remote.Layer(c.repo.Digest("sha256:"+hexSum), c.options(ctx)...)
	if err == nil {
		var size int64
		if size, err = l.Size(); err == nil {
			var rc io.ReadCloser
			if rc, err = l.Compressed(); err == nil {
				c.pulls.Add(1)
				return &counting{ReadCloser: rc, n: &c.pulled}, size, nil
			}
		}
	}
	return nil, 0, c.failed(ctx, "pull source sha256:"+hexSum, err)
}

// counting adds what is read to n.
type counting struct {
	io.ReadCloser
	n interface{ Add(int64) int64 }
}

func (r *counting) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// sourceMeta is a source entry's config.
type sourceMeta struct {
	SHA256 string `json:"sha256"`
	Name   string `json:"name,omitempty"`
	Size   int64  `json:"size"`
}

// PushSource stores the file at path, whose sha256 is hexSum, unless the
// cache has it already. The registry checks the digest of what it is
// sent. Like PushLayer it does nothing without Push or with the registry
// down.
func (c *Cache) PushSource(ctx context.Context, hexSum, fileName, path string) error {
	if !c.pushable() {
		return nil
	}
	tag, err := sourceTag(hexSum)
	if err != nil {
		return err
	}
	ok, err := c.has(ctx, tag)
	if err == nil && ok {
		return nil
	}
	if err == nil {
		var size int64
		if size, err = fileSize(path); err == nil {
			meta, _ := json.Marshal(sourceMeta{SHA256: hexSum, Name: fileName, Size: size})
			err = c.put(ctx, tag, SourceArtifact, meta, SourceConfig,
				[]*fileBlob{{path: path, digest: v1.Hash{Algorithm: "sha256", Hex: hexSum}, size: size, mediaType: SourceFile}}, nil)
		}
	}
	if err != nil {
		if err := c.pushFailed(ctx, "push "+tag, err); err != nil {
			return fmt.Errorf("push source %s: %w", fileName, err)
		}
	}
	return nil
}
