// Package security holds the transport and secret settings that several
// parts of aivis share: the TLS options of a client (to Kafka, to
// ClickHouse) and secrets that may be given inline, in a file or through the
// environment. It reads files and builds *tls.Config values; it never logs
// or formats a secret.
package security

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// ClientTLS configures TLS on a client connection. The zero value is plain
// TCP. Setting any file also turns TLS on.
type ClientTLS struct {
	Enabled bool `koanf:"enabled" help:"connect with TLS (implied when a ca_file or cert_file is set)"`
	// CAFile holds the PEM certificates that may sign the server's
	// certificate; empty trusts the system's roots.
	CAFile string `koanf:"ca_file" help:"PEM file of the CA certificates that sign the server's certificate (empty: the system's roots)"`
	// CertFile and KeyFile are a client certificate, for servers that
	// require one (mTLS).
	CertFile string `koanf:"cert_file" help:"PEM client certificate, for servers that require one (with key_file)"`
	KeyFile  string `koanf:"key_file" help:"PEM private key of cert_file"`
	// ServerName overrides the name checked against the server's
	// certificate (default: the host dialled).
	ServerName string `koanf:"server_name" help:"name the server's certificate must carry (default: the host dialled)"`
	// InsecureSkipVerify accepts any server certificate: for a test only.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" help:"accept any server certificate (testing only: it allows a man in the middle)"`
}

// On reports whether TLS is to be used.
func (c ClientTLS) On() bool { return c.Enabled || c.CAFile != "" || c.CertFile != "" }

// Validate returns the problems of c, each with its key path under prefix
// (e.g. "kafka.tls").
func (c ClientTLS) Validate(prefix string) []error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s: cert_file and key_file go together: set both for a client certificate, or neither", prefix))
	}
	for _, f := range []struct{ key, path string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", prefix, f.key, err))
		}
	}
	return errs
}

// Config builds the client's TLS configuration, or nil when TLS is off.
// Errors name the file and the key under prefix.
func (c ClientTLS) Config(prefix string) (*tls.Config, error) {
	if !c.On() {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // an operator's explicit, documented choice for tests
	}
	if c.CAFile != "" {
		pool, err := CertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", prefix, err)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file/key_file: loading the client certificate %q and its key: %w", prefix, c.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// CertPool reads a PEM file of certificates into a pool.
func CertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("reading CA certificates: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Secret returns the secret given inline (value) or in a file (its
// contents, without the trailing newline); key names the inline key for
// errors, e.g. "kafka.sasl.password". Giving both is an error, so that an
// operator never wonders which one is used.
func Secret(key, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("%s and %s_file are both set; keep one", key, key)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_file: reading the secret: %w", key, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s_file: %s is empty", key, file)
	}
	return s, nil
}

// ValidateSecret reports the problems of a secret given as value or file,
// without returning it.
func ValidateSecret(key, value, file string) error {
	_, err := Secret(key, value, file)
	return err
}
