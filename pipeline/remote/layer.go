package remote

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/confine"
)

// layerTag is where the layer of key (sha256:<hex>) is stored.
func layerTag(key string) (string, error) {
	return hexTag("layer-", strings.TrimPrefix(key, "sha256:"))
}

// HasLayer reports whether the cache holds a layer under key. A registry
// that cannot be reached holds nothing (and a required one is an error).
func (c *Cache) HasLayer(ctx context.Context, key string) (bool, error) {
	tag, err := layerTag(key)
	if err != nil || !c.usable() {
		return false, err
	}
	ok, err := c.has(ctx, tag)
	if err != nil {
		if err := c.failed(ctx, "look up "+tag, err); !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		return false, nil
	}
	return ok, nil
}

// PushLayer stores the layer tree dir under key with its metadata meta
// (the layer's JSON metadata), signed when a signer is set. It does
// nothing when the run does not push, or the registry is down; a failure
// is said once and not the build's, unless the cache is required. tmp is
// where the compressed tree is written first.
func (c *Cache) PushLayer(ctx context.Context, key, dir string, meta []byte, tmp string) error {
	if !c.pushable() {
		return nil
	}
	tag, err := layerTag(key)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(tmp, "push-*.tar.zst")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = WriteTree(dir, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("push layer %s: %w", tag, err)
	}
	digest, size, err := hashFile(f.Name())
	if err != nil {
		return err
	}
	annotations := map[string]string{KeyAnnotation: key}
	if c.Signer != nil {
		sig, err := c.Signer.Armored(bytes.NewReader(meta))
		if err != nil {
			return fmt.Errorf("push layer %s: sign its metadata: %w", tag, err)
		}
		annotations[SignatureAnnotation] = string(sig)
	}
	err = c.put(ctx, tag, LayerArtifact, meta, LayerConfig, []*fileBlob{{path: f.Name(), digest: digest, size: size, mediaType: LayerTree}}, annotations)
	if err != nil {
		return c.pushFailed(ctx, "push "+tag, err)
	}
	return nil
}

// PullLayer unpacks the layer stored under key into dir (which must not
// exist yet) and returns the metadata stored with it. A miss, an
// unreachable registry (said once) and an entry refused (said, with why)
// are fs.ErrNotExist: the caller builds. A required cache that cannot be
// reached is an *UnavailableError. The caller must check that the tree's
// content digest is the one the metadata records before using it.
func (c *Cache) PullLayer(ctx context.Context, key, dir string) ([]byte, error) {
	tag, err := layerTag(key)
	if err != nil {
		return nil, err
	}
	if !c.usable() {
		return nil, fs.ErrNotExist
	}
	m, meta, err := c.get(ctx, tag, LayerArtifact, LayerConfig, LayerTree)
	if err == nil && m.Annotations[KeyAnnotation] != "" && m.Annotations[KeyAnnotation] != key {
		err = refused("it is annotated as the layer of %s", m.Annotations[KeyAnnotation])
	}
	if err == nil && c.Keyring != nil {
		err = c.checkSignature(meta, m.Annotations[SignatureAnnotation])
	}
	if err == nil {
		err = c.unpack(ctx, m.Layers[0], dir)
	}
	if err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			c.Log.Warn(fmt.Sprintf("remote cache entry %s:%s refused: %s; building it here", c.ref, tag, re.Reason))
			return nil, fs.ErrNotExist
		}
		return nil, c.failed(ctx, "pull "+tag, err)
	}
	c.pulls.Add(1)
	return meta, nil
}

// checkSignature checks sig is a valid signature of meta by a key of the
// keyring.
func (c *Cache) checkSignature(meta []byte, sig string) error {
	if sig == "" {
		return refused("it is not signed, and a public key to check cache entries against is configured")
	}
	if _, err := openpgp.CheckArmoredDetachedSignature(c.Keyring, bytes.NewReader(meta), strings.NewReader(sig), nil); err != nil {
		return refused("its signature does not verify with the configured public key: %v", err)
	}
	return nil
}

// unpack downloads the tree blob beside dir and extracts it into dir
// through the same confined extraction as a source archive.
func (c *Cache) unpack(ctx context.Context, d v1.Descriptor, dir string) error {
	blob, err := c.download(ctx, d, filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer os.Remove(blob)
	// A layer's links are kept as they are (absolute ones into the
	// install dir, to system files); nothing is written through one.
	limits := archive.DefaultLimits
	limits.KeepLinksOut = true
	if _, err := archive.Extract(blob, dir, "layer.tar.zst", limits); err != nil {
		archive.RemoveAll(dir)
		var ue *archive.UnsafeError
		if errors.As(err, &ue) {
			return refused("its tree: %v", err)
		}
		return refused("its tree cannot be unpacked: %v", err)
	}
	// The tar holds what is beneath the top directory; the top is 0755,
	// as coach makes every layer's.
	return os.Chmod(dir, 0o755)
}

// epoch is every entry's time in a layer's tar: the tree's digest does
// not cover times (packages take theirs from SOURCE_DATE_EPOCH), so the
// tar is a function of the tree alone and two machines with the same
// layer push the same bytes.
var epoch = time.Unix(0, 0)

// WriteTree writes the tree beneath dir to w as a reproducible tar
// compressed with zstd: entries in lexical order, owner root, times at
// the epoch, every regular file whole (hard links are written as files).
// The tree is read through os.Root.
func WriteTree(dir string, w io.Writer) error {
	root, err := confine.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := int64(info.Mode().Perm())
		if info.Mode()&fs.ModeSetuid != 0 {
			mode |= 0o4000
		}
		if info.Mode()&fs.ModeSetgid != 0 {
			mode |= 0o2000
		}
		if info.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		h := &tar.Header{Name: rel, Mode: mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			h.Typeflag = tar.TypeSymlink
			if h.Linkname, err = root.Readlink(rel); err != nil {
				return err
			}
			return tw.WriteHeader(h)
		case info.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, rel+"/"
			return tw.WriteHeader(h)
		case info.Mode().IsRegular():
			f, st, err := confine.OpenRegular(root, rel, -1)
			if err != nil {
				return err
			}
			defer f.Close()
			h.Typeflag, h.Size = tar.TypeReg, st.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			if err == nil && n != st.Size() {
				err = fmt.Errorf("%s changed while it was written", rel)
			}
			return err
		}
		return fmt.Errorf("%s: unsupported file type %s", rel, info.Mode().Type())
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	return err
}
