package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of coach's artifacts.
const (
	LayerArtifact  = "application/vnd.coach.layer.v1"
	LayerConfig    = "application/vnd.coach.layer.config.v1+json"
	LayerTree      = "application/vnd.coach.layer.tar+zstd"
	SourceArtifact = "application/vnd.coach.source.v1"
	SourceConfig   = "application/vnd.coach.source.config.v1+json"
	SourceFile     = "application/vnd.coach.source.file"
	// SignatureAnnotation holds the armored OpenPGP signature of a layer's
	// config (its metadata).
	SignatureAnnotation = "dev.coach.signature"
	// KeyAnnotation is the layer's key, for people browsing the registry.
	KeyAnnotation = "dev.coach.key"
)

// maxConfigBytes bounds an entry's metadata: a few kilobytes in practice.
const maxConfigBytes = 1 << 20

// maxManifestBytes bounds a manifest read from the registry.
const maxManifestBytes = 1 << 20

// manifest is an OCI image manifest carrying an artifact (ggcr's
// v1.Manifest has no artifactType).
type manifest struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// rawManifest is a manifest to put under a tag.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// fileBlob is a blob read from a file whose digest and size are known.
type fileBlob struct {
	path      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

func (b *fileBlob) Digest() (v1.Hash, error)            { return b.digest, nil }
func (b *fileBlob) Compressed() (io.ReadCloser, error)  { return os.Open(b.path) }
func (b *fileBlob) Size() (int64, error)                { return b.size, nil }
func (b *fileBlob) MediaType() (types.MediaType, error) { return b.mediaType, nil }
func (b *fileBlob) descriptor() (v1.Descriptor, error) {
	return v1.Descriptor{MediaType: b.mediaType, Size: b.size, Digest: b.digest}, nil
}

// hashFile is the sha256 and size of a file.
func hashFile(path string) (v1.Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}

// put uploads an artifact's blobs (config and files; blobs the registry
// has are not sent again) and then its manifest under tag. The manifest
// goes last, so an entry is visible only when all of it is there; two
// writers of one tag each write a whole entry, and the last one stays.
func (c *Cache) put(ctx context.Context, tag, artifactType string, config []byte, configType types.MediaType, blobs []*fileBlob, annotations map[string]string) error {
	opts := c.options(ctx)
	cfg := static.NewLayer(config, configType)
	if err := remote.WriteLayer(c.repo, cfg, opts...); err != nil {
		return fmt.Errorf("upload metadata: %w", err)
	}
	cfgDigest, _ := cfg.Digest()
	m := manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType,
		Config:      v1.Descriptor{MediaType: configType, Size: int64(len(config)), Digest: cfgDigest},
		Annotations: annotations}
	for _, b := range blobs {
		l, err := partial.CompressedToLayer(b)
		if err != nil {
			return err
		}
		if err := remote.WriteLayer(c.repo, l, opts...); err != nil {
			return fmt.Errorf("upload %s: %w", b.digest, err)
		}
		d, _ := b.descriptor()
		m.Layers = append(m.Layers, d)
		c.pushed.Add(b.size)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := remote.Put(c.repo.Tag(tag), rawManifest(raw), opts...); err != nil {
		return fmt.Errorf("put %s: %w", tag, err)
	}
	c.pushes.Add(1)
	return nil
}

// get reads the manifest under tag and checks it is an artifact of
// artifactType with one blob of blobType, and reads its config.
func (c *Cache) get(ctx context.Context, tag, artifactType string, configType, blobType types.MediaType) (*manifest, []byte, error) {
	return c.getConfig(ctx, tag, artifactType, configType, blobType, maxConfigBytes)
}

// getConfig is get with the config bounded by limit.
func (c *Cache) getConfig(ctx context.Context, tag, artifactType string, configType, blobType types.MediaType, limit int64) (*manifest, []byte, error) {
	opts := c.options(ctx)
	desc, err := remote.Get(c.repo.Tag(tag), opts...)
	if err != nil {
		return nil, nil, err
	}
	if len(desc.Manifest) > maxManifestBytes {
		return nil, nil, refused("its manifest is %d bytes", len(desc.Manifest))
	}
	var m manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, nil, refused("its manifest is not JSON: %v", err)
	}
	if m.ArtifactType != artifactType || m.Config.MediaType != configType {
		return nil, nil, refused("it is not a coach entry (artifact type %q, config %q)", m.ArtifactType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != blobType {
		return nil, nil, refused("it does not hold exactly one %s blob", blobType)
	}
	if m.Config.Size > limit || m.Config.Size < 0 {
		return nil, nil, refused("its metadata is %d bytes", m.Config.Size)
	}
	config, err := c.blob(ctx, m.Config.Digest, m.Config.Size)
	if err != nil {
		return nil, nil, err
	}
	return &m, config, nil
}

// blob reads a small blob whole, checking its digest and size.
func (c *Cache) blob(ctx context.Context, d v1.Hash, size int64) ([]byte, error) {
	l, err := remote.Layer(c.repo.Digest(d.String()), c.options(ctx)...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, size+1))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != size || d.Algorithm != "sha256" || hex.EncodeToString(sum[:]) != d.Hex {
		return nil, refused("blob %s does not hash to its digest", d)
	}
	c.pulled.Add(int64(len(data)))
	return data, nil
}

// download copies a blob into a new file in dir, checking its digest and
// size as it streams, and returns the file's path.
func (c *Cache) download(ctx context.Context, d v1.Descriptor, dir string) (string, error) {
	l, err := remote.Layer(c.repo.Digest(d.Digest.String()), c.options(ctx)...)
	if err != nil {
		return "", err
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, "remote-*.blob")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: io.LimitReader(rc, d.Size+1)})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && (n != d.Size || d.Digest.Algorithm != "sha256" || hex.EncodeToString(h.Sum(nil)) != d.Digest.Hex) {
		err = refused("blob %s does not hash to its digest (%d bytes read, %d expected)", d.Digest, n, d.Size)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	c.pulled.Add(n)
	return f.Name(), nil
}

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// has reports whether tag exists.
func (c *Cache) has(ctx context.Context, tag string) (bool, error) {
	_, err := remote.Head(c.repo.Tag(tag), c.options(ctx)...)
	if err == nil {
		return true, nil
	}
	if isMissing(err) {
		return false, nil
	}
	return false, err
}

// RefusedError is an entry coach will not use: not its format, bytes
// that do not match their digest, a bad signature.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Tag validation: tags are [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
func hexTag(prefix, hexSum string) (string, error) {
	if len(hexSum) != 64 {
		return "", fmt.Errorf("%q is not a sha256 hex digest", hexSum)
	}
	if _, err := hex.DecodeString(hexSum); err != nil {
		return "", fmt.Errorf("%q is not a sha256 hex digest", hexSum)
	}
	return prefix + hexSum, nil
}
