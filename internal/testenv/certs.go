package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are PEM files of a throwaway certificate authority and of a server
// and a client certificate it signed, for TLS tests.
type Certs struct {
	Dir string
	// CA is the authority's certificate.
	CA string
	// ServerCert and ServerKey are valid for localhost and 127.0.0.1.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate (mTLS).
	ClientCert, ClientKey string
}

// TestCerts writes a fresh CA and a server and a client certificate into
// a temporary directory of t.
func TestCerts(t testing.TB) Certs {
	t.Helper()
	dir := t.TempDir()
	c := Certs{Dir: dir, CA: filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client.key")}
	caKey, caCert, caDER := newCert(t, "aivis test CA", nil, nil, func(x *x509.Certificate) {
		x.IsCA, x.BasicConstraintsValid = true, true
		x.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
	writePEM(t, c.CA, "CERTIFICATE", caDER)
	for _, leaf := range []struct {
		name, cert, key string
		usage           x509.ExtKeyUsage
	}{{"localhost", c.ServerCert, c.ServerKey, x509.ExtKeyUsageServerAuth}, {"aivis test client", c.ClientCert, c.ClientKey, x509.ExtKeyUsageClientAuth}} {
		key, _, der := newCert(t, leaf.name, caCert, caKey, func(x *x509.Certificate) {
			x.ExtKeyUsage = []x509.ExtKeyUsage{leaf.usage}
			x.KeyUsage = x509.KeyUsageDigitalSignature
			if leaf.usage == x509.ExtKeyUsageServerAuth {
				x.DNSNames = []string{"localhost"}
				x.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
			}
		})
		writePEM(t, leaf.cert, "CERTIFICATE", der)
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, leaf.key, "PRIVATE KEY", kb)
	}
	return c
}

var serial int64

func newCert(t testing.TB, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, edit func(*x509.Certificate)) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano() + serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	edit(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
