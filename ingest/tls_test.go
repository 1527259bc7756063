package ingest

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/security"
	"github.com/aivis-dev/aivis/internal/testenv"
)

// TestHTTPS serves ingest with a certificate made in the test: a client
// that trusts the CA is answered over HTTPS, a plaintext client is told
// it spoke HTTP to an HTTPS server, and with client_ca_file set a client
// without a certificate is refused during the handshake.
func TestHTTPS(t *testing.T) {
	certs := testenv.TestCerts(t)
	for _, mtls := range []bool{false, true} {
		cfg := testConfig()
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.TLS = TLSConfig{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}
		if mtls {
			cfg.TLS.ClientCAFile = certs.CA
		}
		p := &fakeProducer{}
		s := newTestServer(t, cfg, p)
		ln, url, err := Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(url, "https://127.0.0.1:") {
			t.Fatalf("url = %q", url)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()

		post := func(c *http.Client, u string) (int, string, error) {
			req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(event("tls-1")))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := c.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), nil
		}
		clientTLS := security.ClientTLS{CAFile: certs.CA}
		if mtls {
			clientTLS.CertFile, clientTLS.KeyFile = certs.ClientCert, certs.ClientKey
		}
		tc, err := clientTLS.Config("test")
		if err != nil {
			t.Fatal(err)
		}
		trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		if code, body, err := post(trusting, url); err != nil || code != http.StatusAccepted {
			t.Errorf("mtls=%v: HTTPS: %d %s %v", mtls, code, body, err)
		}
		plain := &http.Client{Timeout: 5 * time.Second}
		code, body, err := post(plain, strings.Replace(url, "https://", "http://", 1))
		if err != nil || code != http.StatusBadRequest || !strings.Contains(body, "HTTP request to an HTTPS server") {
			t.Errorf("mtls=%v: plaintext: %d %q %v; want 400 saying HTTPS is required", mtls, code, body, err)
		}
		if mtls {
			noCert, _ := security.ClientTLS{CAFile: certs.CA}.Config("test")
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: noCert}}
			if code, _, err := post(c, url); err == nil {
				t.Errorf("a client without a certificate got %d", code)
			}
		}
		untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
		if _, _, err := post(untrusting, url); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("a client that does not trust the CA: %v", err)
		}
		if n := len(p.records()); n != 1 {
			t.Errorf("mtls=%v: %d records produced, want 1", mtls, n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		trusting.CloseIdleConnections()
	}

	bad := testConfig()
	bad.TLS = TLSConfig{CertFile: certs.ServerCert, ClientCAFile: "/nonexistent/ca.pem"}
	err := bad.Validate()
	for _, want := range []string{"ingest.tls: cert_file and key_file go together", "ingest.tls.client_ca_file: stat /nonexistent/ca.pem"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}
