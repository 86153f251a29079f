package main

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/coach-build/coach/pipeline"
)

// remoteFlags are the remote cache's flags (build, and cache push/pull).
type remoteFlags struct {
	from, to  string
	required  bool
	signKey   string
	verifyKey string
}

func (r *remoteFlags) register(f *pflag.FlagSet, from, to bool) {
	if from {
		f.StringVar(&r.from, "cache-from", "", "remote cache to read layers and sources from, an OCI repository: oci://registry.example/team/coach-cache (default $COACH_CACHE_FROM, else $COACH_REMOTE_CACHE)")
	}
	if to {
		f.StringVar(&r.to, "cache-to", "", "remote cache to read and also write: layers built here and sources fetched are pushed (default $COACH_CACHE_TO); writers are trusted, give it to CI only")
		f.StringVar(&r.signKey, "cache-sign-key", "", "OpenPGP private key file to sign pushed layers with; its passphrase is read from $COACH_SIGNING_PASSPHRASE")
	}
	f.BoolVar(&r.required, "cache-required", false, "fail when the remote cache cannot be reached, instead of warning once and building locally")
	f.StringVar(&r.verifyKey, "cache-verify-key", "", "OpenPGP public key file: a pulled layer must be signed by it, or it is refused and built here (default $COACH_CACHE_VERIFY_KEY)")
}

// options are the flags with the environment's defaults.
func (r *remoteFlags) options() pipeline.RemoteCache {
	o := pipeline.RemoteCache{From: r.from, To: r.to, Required: r.required, SignKey: r.signKey, VerifyKey: r.verifyKey}
	if o.From == "" && o.To == "" {
		o.From = os.Getenv("COACH_CACHE_FROM")
		if o.From == "" {
			o.From = os.Getenv("COACH_REMOTE_CACHE")
		}
		o.To = os.Getenv("COACH_CACHE_TO")
		if o.To != "" && o.From != "" && o.From != o.To {
			o.From = "" // --cache-to reads too
		}
	}
	if o.VerifyKey == "" {
		o.VerifyKey = os.Getenv("COACH_CACHE_VERIFY_KEY")
	}
	return o
}
