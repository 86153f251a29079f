package pipeline

import (
	"context"

	"github.com/coach-build/coach/pipeline/publish"
)

// PublishRequest adds the packages of release directories to a
// repository (publish.Request).
type PublishRequest = publish.Request

// PublishResult says what a publication did (publish.Result).
type PublishResult = publish.Result

// Publish checks each release directory's packages against its
// SHA256SUMS, adds the debs to the apt repository and the rpms to the dnf
// repositories, and signs each release's sums (publish.Releases).
func Publish(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	return publish.Releases(ctx, req)
}
