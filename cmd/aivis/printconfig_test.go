package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/ingest"
)

// TestConfigValidatePrintMasksSecrets: config validate --print shows the
// configuration without the secrets in it. A token pasted into
// token_sha256 by mistake prints as its length only, in the listing and in
// the error, and the ClickHouse password as <set>.
func TestConfigValidatePrintMasksSecrets(t *testing.T) {
	const (
		token    = "aivis_PASTEDBYMISTAKEINSTEADOFITSHASH1234" // 41 characters
		password = "hunter2-clickhouse"
	)
	hash := ingest.HashToken("a token nobody has")
	hash2 := ingest.HashToken("another token nobody has")
	path := filepath.Join(t.TempDir(), "aivis.yaml")
	err := os.WriteFile(path, []byte(`ingest:
  producers:
    - name: pasted
      token_sha256: `+token+`
    - name: shouting
      token_sha256: `+strings.ToUpper(hash)+`
clickhouse:
  password: `+password+`
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("config", "validate", "--config", path, "--print")
	if code != 2 || !strings.Contains(stderr, "ingest.producers[0].token_sha256: must be 64 hex characters") {
		t.Errorf("exit %d, want 2 and the token_sha256 problem:\n%s", code, stderr)
	}
	for _, secret := range []string{token, "PASTEDBYMISTAKE", password} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("config validate --print shows %q:\n%s%s", secret, stdout, stderr)
		}
	}
	for _, want := range []string{
		"token_sha256: '<not a SHA-256: 41 characters hidden>'",
		"token_sha256: " + hash, // a hash prints, as the API compares it
		"password: <set>",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("printed configuration lacks %q:\n%s", want, stdout)
		}
	}

	// Every place a secret can be written: the Kafka SASL password inline
	// or in the environment, a token pasted into tokens_sha256.
	path = filepath.Join(t.TempDir(), "kafka.yaml")
	err = os.WriteFile(path, []byte(`kafka:
  sasl:
    mechanism: SCRAM-SHA-512
    username: aivis
    password: kafka-`+password+`
ingest:
  producers:
    - name: rotating
      token_sha256: `+hash+`
      tokens_sha256: [`+hash2+`, `+token+`]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI("config", "validate", "--config", path, "--print")
	if code != 2 || !strings.Contains(stderr, "ingest.producers[0].tokens_sha256[1]: must be 64 hex characters") {
		t.Errorf("exit %d, want 2 and the tokens_sha256 problem:\n%s", code, stderr)
	}
	for _, secret := range []string{token, "PASTEDBYMISTAKE", password} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("config validate --print shows %q:\n%s%s", secret, stdout, stderr)
		}
	}
	if !strings.Contains(stdout, "password: <set>") || !strings.Contains(stdout, hash2) {
		t.Errorf("printed configuration:\n%s", stdout)
	}

	// Valid, with the password from the environment: the same masking.
	t.Setenv("AIVIS_CLICKHOUSE__PASSWORD", password)
	code, stdout, stderr = runCLI("config", "validate", "--print", "--ingest.allow_anonymous")
	if code != 0 || strings.Contains(stdout+stderr, password) || !strings.Contains(stdout, "password: <set>") {
		t.Errorf("exit %d; want 0 and the password masked:\n%s%s", code, stdout, stderr)
	}
}

func TestMaskTokenHash(t *testing.T) {
	hash := ingest.HashToken("t")
	for in, want := range map[string]string{
		"":                      "",
		hash:                    hash,
		strings.ToUpper(hash):   hash,
		hash[:63]:               "<not a SHA-256: 63 characters hidden>",
		hash + "0":              "<not a SHA-256: 65 characters hidden>",
		strings.Repeat("g", 64): "<not a SHA-256: 64 characters hidden>",
		"aivis_token":           "<not a SHA-256: 11 characters hidden>",
		"jeton-secret-é":        "<not a SHA-256: 14 characters hidden>",
	} {
		if got := maskTokenHash(in); got != want {
			t.Errorf("maskTokenHash(%q) = %q, want %q", in, got, want)
		}
	}
}
