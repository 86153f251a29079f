package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Health reports are shared so that a machine whose every layer came from
// the cache need not make the target's root filesystem just to check a
// tree another machine checked: an artifact tagged health-<key hex> whose
// config is the report (JSON) and whose one blob is empty.
const (
	ReportArtifact = "application/vnd.coach.health.v1"
	ReportConfig   = "application/vnd.coach.health.report.v1+json"
	emptyBlob      = "application/vnd.oci.empty.v1+json"
)

// maxReportBytes bounds a health report: one line per ELF file of the
// tree, so megabytes for the largest trees.
const maxReportBytes = 16 << 20

func reportTag(key string) (string, error) {
	return hexTag("health-", strings.TrimPrefix(key, "sha256:"))
}

// PushReport stores a health report under key (signed when a signer is
// set), when the run pushes and the registry is up; a failure is the
// run's only when the cache is required.
func (c *Cache) PushReport(ctx context.Context, key string, report []byte, tmp string) error {
	if !c.pushable() {
		return nil
	}
	tag, err := reportTag(key)
	if err != nil {
		return err
	}
	if len(report) > maxReportBytes {
		return nil // too big to share: each machine checks its own
	}
	empty := filepath.Join(tmp, fmt.Sprintf("empty-%d.json", os.Getpid()))
	if err := os.WriteFile(empty, []byte("{}"), 0o644); err != nil {
		return err
	}
	defer os.Remove(empty)
	digest, size, err := hashFile(empty)
	if err != nil {
		return err
	}
	annotations := map[string]string{KeyAnnotation: key}
	if c.Signer != nil {
		sig, err := c.Signer.Armored(bytes.NewReader(report))
		if err != nil {
			return fmt.Errorf("push %s: sign it: %w", tag, err)
		}
		annotations[SignatureAnnotation] = string(sig)
	}
	err = c.put(ctx, tag, ReportArtifact, report, ReportConfig, []*fileBlob{{path: empty, digest: digest, size: size, mediaType: emptyBlob}}, annotations)
	if err != nil {
		return c.pushFailed(ctx, "push "+tag, err)
	}
	return nil
}

// PullReport reads the health report stored under key: a miss, an
// unreachable registry and an entry refused (said) are fs.ErrNotExist.
func (c *Cache) PullReport(ctx context.Context, key string) ([]byte, error) {
	tag, err := reportTag(key)
	if err != nil {
		return nil, err
	}
	if !c.usable() {
		return nil, fs.ErrNotExist
	}
	m, report, err := c.getConfig(ctx, tag, ReportArtifact, ReportConfig, emptyBlob, maxReportBytes)
	if err == nil && m.Annotations[KeyAnnotation] != key {
		err = refused("it is annotated as the report of %q", m.Annotations[KeyAnnotation])
	}
	if err == nil && c.Keyring != nil {
		err = c.checkSignature(report, m.Annotations[SignatureAnnotation])
	}
	if err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			c.Log.Warn(fmt.Sprintf("remote cache entry %s:%s refused: %s; checking the tree here", c.ref, tag, re.Reason))
			return nil, fs.ErrNotExist
		}
		return nil, c.failed(ctx, "pull "+tag, err)
	}
	c.pulls.Add(1)
	return report, nil
}
