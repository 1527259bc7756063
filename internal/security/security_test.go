package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		value, file, want, err string
	}{
		{value: "inline", want: "inline"},
		{file: write("nl", "from-file\n"), want: "from-file"},
		{file: write("crlf", "from-file\r\n"), want: "from-file"},
		{file: write("inner", " spaced secret "), want: " spaced secret "},
		{value: "inline", file: write("both", "x"), err: "k and k_file are both set"},
		{file: write("empty", "\n"), err: "k_file: " + filepath.Join(dir, "empty") + " is empty"},
		{file: filepath.Join(dir, "missing"), err: "k_file: reading the secret"},
	}
	for _, tt := range tests {
		got, err := Secret("k", tt.value, tt.file)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Secret(%q, %q) error = %v, want %q", tt.value, tt.file, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "inline") {
				t.Errorf("the error quotes the secret: %v", err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Secret(%q, %q) = %q, %v; want %q", tt.value, tt.file, got, err, tt.want)
		}
	}
}

func TestClientTLSConfig(t *testing.T) {
	if c, err := (ClientTLS{}).Config("x"); c != nil || err != nil {
		t.Errorf("zero value: %v, %v; want plain TCP", c, err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (ClientTLS{CAFile: notPEM}).Config("kafka.tls"); err == nil || !strings.Contains(err.Error(), "kafka.tls.ca_file: reading CA certificates: "+notPEM+" holds no PEM certificate") {
		t.Errorf("a CA file without certificates: %v", err)
	}
	if _, err := (ClientTLS{CertFile: notPEM, KeyFile: notPEM}).Config("kafka.tls"); err == nil || !strings.Contains(err.Error(), "kafka.tls.cert_file/key_file") {
		t.Errorf("a bad client certificate: %v", err)
	}
	c, err := ClientTLS{Enabled: true, ServerName: "b.example"}.Config("x")
	if err != nil || c == nil || c.ServerName != "b.example" || c.RootCAs != nil || c.InsecureSkipVerify {
		t.Errorf("enabled: %+v, %v", c, err)
	}
}
