package pkg

import (
	"bytes"
	"crypto"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/coach-build/coach/pipeline/confine"
)

// maxKeyBytes bounds a signing key file: a keyring of a few keys is a
// few kilobytes.
const maxKeyBytes = 1 << 20

// Signer makes OpenPGP detached signatures with one private key, for the
// deb and rpm writers (and, later, for repository metadata). It is the
// only signing path: a signed package is written by the same code as an
// unsigned one, with the signature added.
type Signer struct {
	entity *openpgp.Entity
	// KeyID is the signing key's long id, in upper-case hex.
	KeyID string
}

// LoadSigner reads an armored or binary private key file holding exactly
// one key that can sign, decrypting it with passphrase when it is
// protected. The passphrase is never written anywhere.
func LoadSigner(keyFile, passphrase string) (*Signer, error) {
	root, err := os.OpenRoot(filepath.Dir(keyFile))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	defer root.Close()
	raw, err := confine.ReadFile(root, filepath.Base(keyFile), maxKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyFile, err)
	}
	var list openpgp.EntityList
	if bytes.Contains(raw, []byte("-----BEGIN PGP")) {
		list, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
	} else {
		list, err = openpgp.ReadKeyRing(bytes.NewReader(raw))
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: not an OpenPGP private key: %w", keyFile, err)
	}
	var key *openpgp.Entity
	for _, e := range list {
		if e.PrivateKey == nil {
			continue
		}
		if key != nil {
			return nil, fmt.Errorf("signing key %s holds more than one private key; export just the one to sign with", keyFile)
		}
		key = e
	}
	if key == nil {
		return nil, fmt.Errorf("signing key %s holds no private key (was it exported with --export-secret-keys?)", keyFile)
	}
	if encrypted(key) {
		if passphrase == "" {
			return nil, fmt.Errorf("signing key %s is protected by a passphrase, and none was given", keyFile)
		}
		if err := key.DecryptPrivateKeys([]byte(passphrase)); err != nil {
			return nil, fmt.Errorf("signing key %s: the passphrase does not unlock it", keyFile)
		}
	}
	s := &Signer{entity: key}
	k, ok := key.SigningKey(time.Now())
	if !ok {
		return nil, fmt.Errorf("signing key %s has no key valid for signing now (expired or revoked?)", keyFile)
	}
	s.KeyID = fmt.Sprintf("%016X", k.PublicKey.KeyId)
	return s, nil
}

func encrypted(e *openpgp.Entity) bool {
	if e.PrivateKey != nil && e.PrivateKey.Encrypted {
		return true
	}
	for _, sub := range e.Subkeys {
		if sub.PrivateKey != nil && sub.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

// config signs with SHA-256, which every rpm and dpkg coach targets
// verifies.
func (s *Signer) config() *packet.Config {
	return &packet.Config{DefaultHash: crypto.SHA256}
}

// Detached is a binary detached signature of message, as rpm stores
// in its signature header.
func (s *Signer) Detached(message io.Reader) ([]byte, error) {
	var b bytes.Buffer
	if err := openpgp.DetachSign(&b, s.entity, message, s.config()); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return b.Bytes(), nil
}

// Armored is an ASCII-armored detached signature of message, as debsig
// keeps in a deb's _gpgorigin member.
func (s *Signer) Armored(message io.Reader) ([]byte, error) {
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, s.entity, message, s.config()); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return b.Bytes(), nil
}

// PublicKey is the signer's public key, armored, for users to import.
func (s *Signer) PublicKey() ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := s.entity.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ClearSigned is message clear-signed (an apt repository's InRelease):
// the text itself between OpenPGP armor lines, and its signature.
func (s *Signer) ClearSigned(message []byte) ([]byte, error) {
	k, ok := s.entity.SigningKey(time.Now())
	if !ok {
		return nil, fmt.Errorf("signing: the key %s has no key valid for signing now", s.KeyID)
	}
	var b bytes.Buffer
	w, err := clearsign.Encode(&b, k.PrivateKey, s.config())
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if _, err := w.Write(message); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	// go-crypto armors the signature without the CRC-24 line and without
	// a final line break; gpg (not apt) then reads the END line as more
	// armor and fails. The signature is armored again, as gpg does.
	doc := b.Bytes()
	i := bytes.LastIndex(doc, []byte("-----BEGIN PGP SIGNATURE-----"))
	if i < 0 {
		return nil, fmt.Errorf("signing: the clear-signed text has no signature block")
	}
	blk, err := armor.Decode(bytes.NewReader(doc[i:]))
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	sig, err := io.ReadAll(blk.Body)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	out := bytes.NewBuffer(doc[:i:i])
	aw, err := armor.Encode(out, "PGP SIGNATURE", nil)
	if err != nil {
		return nil, err
	}
	aw.Write(sig)
	if err := aw.Close(); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
