package alerts

import (
	"os"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/schemas"
)

func TestExampleWebhooksLoad(t *testing.T) {
	t.Setenv("AIVIS_WEBHOOK_SECRET", "example-signing-secret")
	t.Setenv("AIVIS_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX")
	t.Setenv("AIVIS_PAGERDUTY_ROUTING_KEY", "example-routing-key")
	hooks, err := LoadFile("../deploy/alerts.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 3 {
		t.Fatalf("got %d webhooks, want 3", len(hooks))
	}
	if h := hooks[0]; h.Type != TypeGeneric || h.Secret != "example-signing-secret" {
		t.Fatalf("generic: %+v", h)
	}
	if h := hooks[1]; h.Type != TypeSlack || !strings.HasPrefix(h.URL, "https://hooks.slack.com/") {
		t.Fatalf("slack: %+v", h)
	}
	if h := hooks[2]; h.Type != TypePagerDuty || h.URL != PagerDutyEventsURL || h.RoutingKey != "example-routing-key" || len(h.Kinds) != 1 {
		t.Fatalf("pagerduty: %+v", h)
	}
	doc, err := os.ReadFile("../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../deploy/alerts.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(example)) {
		t.Fatal("docs/alerts.md does not show deploy/alerts.example.yaml verbatim; copy the file into it")
	}
}

func TestWebhookValidation(t *testing.T) {
	env := map[string]string{"SET": "value"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, c := range []struct{ name, yaml, want string }{
		{"empty", "webhooks: []\n", "webhooks: is empty"},
		{"unknown key", "webhooks:\n  - name: a\n    typ: slack\n", "webhooks[0].typ: unknown key"},
		{"missing type", "webhooks:\n  - name: a\n    url: https://x\n", "webhooks[0].type: is required"},
		{"bad type", "webhooks:\n  - name: a\n    type: teams\n    url: https://x\n", `webhooks[0].type: "teams" must be`},
		{"bad name", "webhooks:\n  - name: A B\n    type: slack\n    url: https://x\n", "webhooks[0].name:"},
		{"dup name", "webhooks:\n  - {name: a, type: slack, url: 'https://x'}\n  - {name: a, type: slack, url: 'https://y'}\n", "webhooks[1].name: \"a\" is also"},
		{"no secret", "webhooks:\n  - {name: a, type: generic, url: 'https://x'}\n", "webhooks[0].secret: is required"},
		{"unset env", "webhooks:\n  - {name: a, type: generic, url: 'https://x', secret_env: NOPE}\n", "webhooks[0].secret_env: environment variable NOPE is not set"},
		{"both", "webhooks:\n  - {name: a, type: generic, url: 'https://x', secret: s, secret_env: SET}\n", "webhooks[0].secret: set either"},
		{"no routing key", "webhooks:\n  - {name: a, type: pagerduty}\n", "webhooks[0].routing_key: is required"},
		{"bad url", "webhooks:\n  - {name: a, type: slack, url: 'ftp://tok3n@x'}\n", "webhooks[0].url: must be an absolute"},
		{"no url", "webhooks:\n  - {name: a, type: slack}\n", "webhooks[0].url: is required"},
		{"bad kind", "webhooks:\n  - {name: a, type: slack, url: 'https://x', kinds: [cost]}\n", "webhooks[0].kinds[0]:"},
		{"bad status", "webhooks:\n  - {name: a, type: slack, url: 'https://x', statuses: [open]}\n", "webhooks[0].statuses[0]:"},
		{"stray secret", "webhooks:\n  - {name: a, type: slack, url: 'https://x', secret: s}\n", "webhooks[0].secret: only generic"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), lookup)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "tok3n") || strings.Contains(err.Error(), "value") {
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
	// Every problem is reported at once.
	_, err := Parse([]byte("webhooks:\n  - {name: a, type: generic}\n  - {name: b, type: pagerduty}\n"), lookup)
	if err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Fatalf("want three problems, got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := Config{MaxAttempts: 0, RequestTimeout: 0, Backoff: 0, MaxBackoff: -1, WebhooksPath: "/nonexistent.yaml"}
	err := c.Validate()
	for _, k := range []string{"alerts.max_attempts", "alerts.request_timeout", "alerts.backoff", "alerts.max_backoff", "alerts.webhooks_path"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Fatalf("missing %s in %v", k, err)
		}
	}
}

func TestGovernanceAlertText(t *testing.T) {
	a := schemas.Alert{Kind: schemas.AlertGovernance, Category: schemas.CategorySecurity, Status: schemas.AlertFiring,
		Signal: "auth_failure_burst", Subject: "10.1.2.3", Detail: "25 requests from 10.1.2.3 were refused", CostUSD: "0"}
	if got, want := Summary(a), "[FIRING] security signal auth_failure_burst: 25 requests from 10.1.2.3 were refused"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if severity(a) != "error" {
		t.Errorf("a security signal's severity is %q", severity(a))
	}
	a.Category = schemas.CategoryGovernance
	if severity(a) != "warning" {
		t.Errorf("a governance signal's severity is %q", severity(a))
	}
}
