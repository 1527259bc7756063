package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestCredentialName(t *testing.T) {
	for name, want := range map[string]bool{
		"api_key": true, "API-KEY": true, "apikey": true, "ApiKey": true, "x-api-key": true, "X-Goog-Api-Key": true,
		"openai_api_key": true, "authorization": true, "Proxy-Authorization": true, "auth": true, "token": true,
		"githubToken": true, "access_token": true, "secret": true, "client_secret": true, "db.password": true,
		"bearer": true, "access_key": true, "AWS_SECRET_ACCESS_KEY": true, "private key": true, "cookie": true,
		"team": false, "project": false, "max_tokens": false, "tokens": false, "keyword": false, "author": false,
		"key": false, "monkey": false, "cost_center": false, "authority": false,
	} {
		if got := CredentialName(name); got != want {
			t.Errorf("CredentialName(%q) = %t, want %t", name, got, want)
		}
	}
}

// The form of an API key id is a stored contract: ids already in
// ClickHouse and in ownership rules must keep matching.
func TestAPIKeyID(t *testing.T) {
	sum := sha256.Sum256([]byte("sk-live-123"))
	want := "sha256:" + hex.EncodeToString(sum[:16])
	if got := APIKeyID("sk-live-123"); got != want || !IsAPIKeyID(got) {
		t.Errorf("APIKeyID = %q, want %q", got, want)
	}
	if got := APIKeyID(""); got != "sha256:e3b0c44298fc1c149afbf4c8996fb924" {
		t.Errorf("APIKeyID(\"\") = %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = APIKeyID("sk-live-123") }); n > 1 {
		t.Errorf("APIKeyID allocates %v times, want 1", n)
	}
}

func TestReduceRawUsage(t *testing.T) {
	for in, want := range map[string]string{
		`{"prompt_tokens":10,"api_key":"sk-live-123","user":"bob","details":{"cached_tokens":2,"note":"x"},"ok":true,"n":null}`: `{"prompt_tokens":10,"details":{"cached_tokens":2}}`,
		`{"promptTokensDetails":[{"modality":"TEXT","tokenCount":4},{"modality":"sk-live-123","tokenCount":1}]}`:                `{"promptTokensDetails":[{"modality":"TEXT","tokenCount":4},{"tokenCount":1}]}`,
		`{"cacheDetails":[{"ttl":"5m","inputTokens":3}],"sk-live-123":1,"e":{"x":"y"}}`:                                         `{"cacheDetails":[{"ttl":"5m","inputTokens":3}]}`,
		`{"only":"text"}`:        ``,
		`"sk-live-123"`:          ``,
		`[1,2]`:                  ``,
		` {"a": 1e3 , "b":[ ]} `: `{"a":1e3}`,
	} {
		if got := string(ReduceRawUsage(json.RawMessage(in))); got != want {
			t.Errorf("ReduceRawUsage(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestHideSecrets(t *testing.T) {
	e := Event{
		APIKeyID: "sk-live-123",
		Labels:   map[string]string{"team": "search", "X-Api-Key": "sk-live-456", "token": APIKeyID("t")},
		RawUsage: json.RawMessage(`{"input_tokens":5,"api_key":"sk-live-789"}`),
	}
	e.HideSecrets()
	if e.APIKeyID != APIKeyID("sk-live-123") {
		t.Errorf("api_key_id = %q", e.APIKeyID)
	}
	if e.Labels["team"] != "search" || e.Labels["X-Api-Key"] != APIKeyID("sk-live-456") || e.Labels["token"] != APIKeyID("t") {
		t.Errorf("labels = %v", e.Labels)
	}
	if string(e.RawUsage) != `{"input_tokens":5}` {
		t.Errorf("raw_usage = %s", e.RawUsage)
	}
	e.HideSecrets() // ids are not hashed twice
	if e.APIKeyID != APIKeyID("sk-live-123") || e.Labels["X-Api-Key"] != APIKeyID("sk-live-456") {
		t.Errorf("second pass: %q %v", e.APIKeyID, e.Labels)
	}
}

func FuzzReduceRawUsage(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[1,{"d":"x"}]},"modality":"TEXT"}`))
	f.Add([]byte(`{"prompt_tokens":100,"details":{"cached_tokens":0,"x":[1,-2.5e3]},"ttl":"5m"}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if countsOnly(data) {
			// The shortcut must agree with the full paths it skips.
			if !json.Valid(data) || data[0] == '{' && string(ReduceRawUsage(data)) != string(data) || len(CheckJSON(data, nil)) > 0 {
				t.Fatalf("countsOnly(%q) but it is not a clean, reduced usage object", data)
			}
		}
		out := ReduceRawUsage(data)
		if out == nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("ReduceRawUsage(%q) = %q, not JSON", data, out)
		}
		if again := ReduceRawUsage(out); string(again) != string(out) {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
	})
}

// The decoder's remembered answers must stay CredentialName's when names
// share a slot and come back in turns.
func TestDecoderCredentialName(t *testing.T) {
	var d Decoder
	names := []string{"team", "X-Api-Key", "token", "max_tokens", "openai_api_key", "author", "db.password", ""}
	for i := range 4 * internSize {
		names = append(names, fmt.Sprintf("label_%d", i), fmt.Sprintf("secret_%d", i))
	}
	for round := range 3 {
		for _, n := range names {
			if got, want := d.credentialName(n), CredentialName(n); got != want {
				t.Fatalf("round %d: credentialName(%q) = %v, CredentialName says %v", round, n, got, want)
			}
		}
	}
}

// countsOnly takes every name countName keeps and no other.
func TestCountsOnlyNames(t *testing.T) {
	long := strings.Repeat("a", maxRawUsageKey)
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{`{"input_tokens":1}`, true},
		{`{"a.b_C9":0,"x":[1,2.5,-3e2]}`, true},
		{`{"` + long + `":1}`, true},
		{`{"` + long + `a":1}`, false},
		{`{"":1}`, false},
		{`{"a b":1}`, false},
		{`{"a\u0062":1}`, false},
		{`{"a-b":1}`, false},
		{`{"é":1}`, false},
		{`{"a":1,"a":2}`, false},
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":1e}`, false},
		{`{"a":-}`, false},
		{`{"a"`, false},
	} {
		if got := countsOnly([]byte(tc.raw)); got != tc.want {
			t.Errorf("countsOnly(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
	const kept = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_."
	for c := range 256 {
		if got, want := countNameByte[c], strings.IndexByte(kept, byte(c)) >= 0; got != want {
			t.Errorf("countNameByte[%#x] = %v, want %v", c, got, want)
		}
	}
}

// TestIsAPIKeyIDBytes puts every byte at each end of an id's hex part.
func TestIsAPIKeyIDBytes(t *testing.T) {
	hex := "0123456789abcdef0123456789abcdef"
	if !IsAPIKeyID("sha256:" + hex) {
		t.Fatal("a valid id refused")
	}
	for c := range 256 {
		want := c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
		for _, s := range []string{"sha256:" + string([]byte{byte(c)}) + hex[1:], "sha256:" + hex[:31] + string([]byte{byte(c)})} {
			if got := IsAPIKeyID(s); got != want {
				t.Errorf("IsAPIKeyID(%q) = %v, want %v", s, got, want)
			}
		}
	}
	for _, s := range []string{"", "sha256:", "sha256:" + hex[:31], "sha256:" + hex + "0", "SHA256:" + hex, "sha256:" + strings.ToUpper(hex)} {
		if IsAPIKeyID(s) {
			t.Errorf("IsAPIKeyID(%q) = true", s)
		}
	}
}
