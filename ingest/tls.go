package ingest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/aivis-dev/aivis/internal/security"
)

// TLSConfig makes ingest serve HTTPS. With CertFile and KeyFile set, the
// listener speaks TLS only: a plaintext HTTP request is answered "400
// Client sent an HTTP request to an HTTPS server" and closed. With
// ClientCAFile set as well, every client must present a certificate signed
// by one of its CAs (mutual TLS) besides its bearer token.
type TLSConfig struct {
	CertFile string `koanf:"cert_file" help:"PEM certificate (chain) of the ingest API; with key_file, ingest serves HTTPS only"`
	KeyFile  string `koanf:"key_file" help:"PEM private key of cert_file"`
	// ClientCAFile turns on mutual TLS.
	ClientCAFile string `koanf:"client_ca_file" help:"PEM CA certificates; when set, every client must present a certificate they signed (mutual TLS)"`
}

// On reports whether ingest serves HTTPS.
func (c TLSConfig) On() bool { return c.CertFile != "" || c.KeyFile != "" }

func (c TLSConfig) problems() []error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("ingest.tls: cert_file and key_file go together: set both to serve HTTPS, or neither"))
	}
	if c.ClientCAFile != "" && !c.On() {
		errs = append(errs, errors.New("ingest.tls.client_ca_file: client certificates need HTTPS; set ingest.tls.cert_file and key_file too"))
	}
	for _, f := range []struct{ key, path string }{{"cert_file", c.CertFile}, {"key_file", c.KeyFile}, {"client_ca_file", c.ClientCAFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("ingest.tls.%s: %w", f.key, err))
		}
	}
	return errs
}

// ServerConfig returns the TLS configuration of the ingest listener, or nil
// when TLS is off. The certificate is read again whenever its files change,
// so a renewed certificate needs no restart.
func (c TLSConfig) ServerConfig() (*tls.Config, error) {
	if !c.On() {
		return nil, nil
	}
	cert := &certReloader{certFile: c.CertFile, keyFile: c.KeyFile}
	if _, err := cert.get(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.get() },
	}
	if c.ClientCAFile != "" {
		pool, err := security.CertPool(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("ingest.tls.client_ca_file: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Listen opens the ingest listener on cfg.ListenAddr, with TLS when
// configured, and returns the URL of POST /v1/events on it.
func Listen(cfg Config) (net.Listener, string, error) {
	tc, err := cfg.TLS.ServerConfig()
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, "", fmt.Errorf("listening for the ingest API on %s (choose another with --ingest.listen_addr): %w", cfg.ListenAddr, err)
	}
	if tc == nil {
		return ln, "http://" + ln.Addr().String() + Path, nil
	}
	return tls.NewListener(ln, tc), "https://" + ln.Addr().String() + Path, nil
}

// certReloader serves a key pair from files, loading it again when the
// certificate file's modification time changes.
type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	mod               time.Time
	cert              *tls.Certificate
}

func (r *certReloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := os.Stat(r.certFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the last good one
		}
		return nil, fmt.Errorf("ingest.tls.cert_file: %w", err)
	}
	if r.cert != nil && st.ModTime().Equal(r.mod) {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("ingest.tls: loading the certificate %q and key %q: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.mod = &c, st.ModTime()
	return r.cert, nil
}
