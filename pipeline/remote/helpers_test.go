package remote

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/klauspost/compress/zstd"
)

type tarWriter struct{ tw *tar.Writer }

func newTarWriter(w io.Writer) *tarWriter { return &tarWriter{tar.NewWriter(w)} }

func (w *tarWriter) symlink(name, target string) {
	w.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
}

func (w *tarWriter) file(name, body string) {
	w.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(body)), Mode: 0o644})
	w.tw.Write([]byte(body))
}

func (w *tarWriter) close() { w.tw.Close() }

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// testKey signs with a fresh OpenPGP key.
type testKey struct{ entity *openpgp.Entity }

func newKey(t *testing.T, name string) *testKey {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@coach.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{e}
}

func (k *testKey) Armored(message io.Reader) ([]byte, error) {
	var b bytes.Buffer
	err := openpgp.ArmoredDetachSign(&b, k.entity, message, nil)
	return b.Bytes(), err
}
