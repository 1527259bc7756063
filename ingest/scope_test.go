package ingest

import (
	"net/http"
	"strings"
	"testing"
)

// TestTokenRotation: every token of a producer authenticates as that
// producer, and a token listed twice is a config error.
func TestTokenRotation(t *testing.T) {
	cfg := testConfig()
	cfg.Producers = []ProducerToken{{Name: "gw", TokenSHA256: HashToken("old"), TokensSHA256: []string{HashToken("new")}},
		{Name: "batch", TokensSHA256: []string{HashToken("batch-1")}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := newAuthenticator(cfg)
	for header, want := range map[string]string{"Bearer old": "gw", "Bearer new": "gw", "Bearer batch-1": "batch", "Bearer other": ""} {
		if got, _ := a.check(header); got != want {
			t.Errorf("check(%q) = %q, want %q", header, got, want)
		}
	}

	cfg.Producers[1].TokensSHA256 = append(cfg.Producers[1].TokensSHA256, strings.ToUpper(HashToken("new")), "raw-token-pasted")
	cfg.Producers = append(cfg.Producers, ProducerToken{Name: "none"})
	err := cfg.Validate()
	for _, want := range []string{
		"ingest.producers[1].tokens_sha256[1]: is also a token of producers[0]",
		"ingest.producers[1].tokens_sha256[2]: must be 64 hex characters",
		"ingest.producers[2].token_sha256: is required",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "raw-token-pasted") {
		t.Errorf("Validate echoes a value that may be a token: %v", err)
	}
}

// TestScopedToken: a token scoped to sources or teams may report only for
// them; one event outside the scope refuses the whole request with 403 and
// the index and field of every event at fault, in partial mode too, and
// nothing of it reaches Kafka.
func TestScopedToken(t *testing.T) {
	cfg := testConfig()
	cfg.Producers = []ProducerToken{
		{Name: "gw-ml", TokenSHA256: HashToken("ml-token"), Sources: []string{"gw-eu", "gw-us-*"}, Teams: []string{"ml", "ml-*"}},
		{Name: "open", TokenSHA256: HashToken("open-token")},
	}
	p := &fakeProducer{}
	h := newTestServer(t, cfg, p).Handler()
	team := func(id, src, team string) string {
		e := event(id, `"labels":{"team":"`+team+`"}`)
		return strings.Replace(e, `"source":"gw-eu"`, `"source":"`+src+`"`, 1)
	}

	rec, resp := call{body: team("ok-1", "gw-eu", "ml") + "\n" + team("ok-2", "gw-us-east", "ml-vision"), token: "ml-token"}.do(t, h)
	if rec.Code != http.StatusAccepted || resp.Accepted != 2 {
		t.Fatalf("in scope: %d %+v", rec.Code, resp)
	}

	for _, partial := range []string{"", "?partial=true"} {
		before := len(p.records())
		body := team("a", "gw-eu", "ml") + "\n" + team("b", "gw-eu", "finance") + "\n" + team("c", "gw-asia", "ml") + "\n" + event("d")
		req := call{body: body, token: "ml-token"}
		rec, resp = req.doPath(t, h, Path+partial)
		if rec.Code != http.StatusForbidden || resp.Code != CodeOutOfScope || resp.Accepted != 0 || resp.Rejected != 4 {
			t.Fatalf("out of scope%s: %d %+v", partial, rec.Code, resp)
		}
		want := []EventError{
			{Index: 1, Field: "labels.team", Code: CodeOutOfScope},
			{Index: 2, Field: "source", Code: CodeOutOfScope},
			{Index: 3, Field: "labels.team", Code: CodeOutOfScope},
		}
		if len(resp.Errors) != len(want) {
			t.Fatalf("errors = %+v, want %+v", resp.Errors, want)
		}
		for i, w := range want {
			g := resp.Errors[i]
			if g.Index != w.Index || g.Field != w.Field || g.Code != w.Code || !strings.Contains(g.Message, "gw-ml may only report for") {
				t.Errorf("errors[%d] = %+v, want %+v", i, g, w)
			}
		}
		if !strings.Contains(resp.Message, "none of the request was stored") {
			t.Errorf("message = %q", resp.Message)
		}
		if n := len(p.records()) - before; n != 0 {
			t.Errorf("%d records of a refused request reached Kafka", n)
		}
	}

	// The unscoped producer may report for any source and team.
	rec, resp = call{body: team("x", "gw-asia", "finance"), token: "open-token"}.do(t, h)
	if rec.Code != http.StatusAccepted || resp.Accepted != 1 {
		t.Fatalf("unscoped: %d %+v", rec.Code, resp)
	}

	cfg.Producers[0].Sources = []string{"gw-[eu"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ingest.producers[0].sources[0]") {
		t.Errorf("a bad pattern: Validate() = %v", err)
	}
}
