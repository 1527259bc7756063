package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// tokenHashInText finds token_sha256 values in YAML, in JSON (as in
// AIVIS_INGEST__PRODUCERS) and in the code blocks of Markdown.
var tokenHashInText = regexp.MustCompile(`(?i)token_sha256["']?\s*[:=]\s*["']?([0-9a-f]{64})\b`)

// guessableTokens are the tokens, besides every string of up to three
// printable ASCII characters, that someone would try first.
var guessableTokens = []string{
	"test", "token", "secret", "changeme", "change-me", "changeit", "password", "passw0rd", "dev",
	"admin", "aivis", "example", "default", "demo", "local", "localhost", "letmein", "qwerty", "hunter2",
	"1234", "12345", "123456", "12345678", "abc123", "replaceme", "replace-me", "insecure", "bearer",
	"producer", "gateway", "gateway-eu", "my-gateway", "my-token", "your-token", "dev-token", "test-token",
	"secret-token", "aivis-dev", "aivis_dev", "aivis_test", "aivis_token", "<token>", "$TOKEN", "TOKEN",
}

// TestConfigExamplesHaveNoGuessableTokens: whoever copies an example or
// default configuration accepts every token whose hash it lists, so none
// of them may list the hash of a token that can be guessed.
func TestConfigExamplesHaveNoGuessableTokens(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	where := map[string][]string{} // hash -> files listing it
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".md", ".json", ".env":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, m := range tokenHashInText.FindAllSubmatch(b, -1) {
			h := strings.ToLower(string(m[1]))
			where[h] = append(where[h], rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !hasFile(where, filepath.Join("deploy", "aivis.example.yaml")) {
		t.Fatalf("found no token_sha256 in deploy/aivis.example.yaml; the scan is broken (found %v)", where)
	}
	for i, p := range Default().Ingest.Producers {
		h := strings.ToLower(p.TokenSHA256)
		where[h] = append(where[h], fmt.Sprintf("Default().Ingest.Producers[%d]", i))
	}

	check := func(token []byte) {
		sum := sha256.Sum256(token)
		if files, ok := where[hex.EncodeToString(sum[:])]; ok {
			t.Errorf("%v list the hash of the token %q; put the hash of a secret nobody has (aivis token prints one)", files, token)
		}
	}
	for _, w := range guessableTokens {
		for _, v := range []string{w, strings.ToUpper(w), strings.ToUpper(w[:1]) + w[1:]} {
			check([]byte(v))
		}
	}
	// Every string of up to three printable ASCII characters: about 860,000
	// hashes, a fraction of a second.
	check(nil)
	var b [3]byte
	for n := 1; n <= len(b); n++ {
		var fill func(i int)
		fill = func(i int) {
			if i == n {
				check(b[:n])
				return
			}
			for c := byte(' '); c <= '~'; c++ {
				b[i] = c
				fill(i + 1)
			}
		}
		fill(0)
	}
}

func hasFile(where map[string][]string, file string) bool {
	for _, files := range where {
		for _, f := range files {
			if f == file {
				return true
			}
		}
	}
	return false
}
