package alerts

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
	"github.com/aivis-dev/aivis/schemas"
)

// Config is the alerts section of aivis's configuration. The webhooks are
// a list holding secrets, so they live in their own file (WebhooksPath).
type Config struct {
	// WebhooksPath is the webhooks YAML file; empty sends alerts to Kafka only.
	WebhooksPath string `koanf:"webhooks_path" help:"webhooks YAML file, see docs/alerts.md (empty: alerts go to the alerts topic only)"`
	// MaxAttempts bounds the tries of one delivery, the first included.
	MaxAttempts int `koanf:"max_attempts" help:"tries of one webhook delivery, the first included, before it is given up"`
	// RequestTimeout bounds each HTTP request.
	RequestTimeout time.Duration `koanf:"request_timeout" help:"timeout of each webhook request"`
	// Backoff is the delay before the first retry; it doubles each retry,
	// with jitter, up to MaxBackoff. A receiver's Retry-After is honoured
	// up to MaxBackoff too.
	Backoff    time.Duration `koanf:"backoff" help:"delay before the first webhook retry; doubles each retry, with jitter"`
	MaxBackoff time.Duration `koanf:"max_backoff" help:"longest delay between webhook retries, Retry-After included"`
	// QueueSize bounds the alerts waiting for one webhook; when it is full
	// (the receiver is down or slow) new alerts for it are dropped, logged
	// and counted, never waited for.
	QueueSize int `koanf:"queue_size" help:"alerts that may wait for one webhook; beyond it new ones are dropped (logged and counted), so a receiver that is down never blocks scoring"`
	// DrainTimeout bounds how long a stopping process keeps delivering the
	// alerts still queued.
	DrainTimeout time.Duration `koanf:"drain_timeout" help:"how long a stopping process keeps delivering the alerts still queued for webhooks"`
}

// DefaultConfig tries four times within about a minute at worst.
func DefaultConfig() Config {
	return Config{MaxAttempts: 4, RequestTimeout: 10 * time.Second, Backoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second,
		QueueSize: 1000, DrainTimeout: 30 * time.Second}
}

// Validate reports every problem with its key path; a configured webhooks
// file is loaded (and its secret variables read), so that `aivis config
// validate` catches a bad webhook.
func (c Config) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 || c.MaxAttempts > 20 {
		errs = append(errs, fmt.Errorf("alerts.max_attempts: %d must be between 1 and 20", c.MaxAttempts))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("alerts.request_timeout: must be positive (e.g. 10s)"))
	}
	if c.Backoff <= 0 {
		errs = append(errs, errors.New("alerts.backoff: must be positive (e.g. 500ms)"))
	}
	if c.MaxBackoff < c.Backoff {
		errs = append(errs, fmt.Errorf("alerts.max_backoff: %s must be at least alerts.backoff %s", c.MaxBackoff, c.Backoff))
	}
	if c.QueueSize < 1 || c.QueueSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("alerts.queue_size: %d must be between 1 and 1000000", c.QueueSize))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("alerts.drain_timeout: must not be negative (e.g. 30s)"))
	}
	if c.WebhooksPath != "" {
		if _, err := LoadFile(c.WebhooksPath); err != nil {
			errs = append(errs, fmt.Errorf("alerts.webhooks_path: %w", err))
		}
	}
	return errors.Join(errs...)
}

// File is the webhooks file.
type File struct {
	Webhooks []WebhookConfig `yaml:"webhooks"`
}

// WebhookConfig is one receiver as written in the file. Secrets are best
// given by the name of an environment variable (secret_env,
// routing_key_env) so the file itself can be shared.
type WebhookConfig struct {
	// Name identifies the webhook in logs and metrics; the URL never
	// appears there, since Slack's URLs are themselves secrets.
	Name string `yaml:"name"`
	// Type is generic, slack or pagerduty.
	Type string `yaml:"type"`
	// URL is where to POST; pagerduty defaults to the Events API v2.
	URL string `yaml:"url"`
	// URLEnv names a variable holding the URL instead.
	URLEnv string `yaml:"url_env"`
	// Secret signs generic deliveries (X-Aivis-Signature).
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secret_env"`
	// RoutingKey is the PagerDuty integration key.
	RoutingKey    string `yaml:"routing_key"`
	RoutingKeyEnv string `yaml:"routing_key_env"`
	// Kinds limits the alert kinds sent (cost_anomaly, budget); empty sends all.
	Kinds []string `yaml:"kinds"`
	// Statuses limits the lifecycle statuses sent (firing, updated,
	// resolved); empty sends all. Alerts without a lifecycle (budget
	// alerts) count as firing.
	Statuses []string `yaml:"statuses"`
}

// Webhook types.
const (
	TypeGeneric   = "generic"
	TypeSlack     = "slack"
	TypePagerDuty = "pagerduty"
)

// PagerDutyEventsURL is the Events API v2 endpoint.
const PagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// MaxWebhooks bounds the file, and with it the per-webhook metric series.
const MaxWebhooks = 50

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Webhook is a validated receiver with its secrets resolved.
type Webhook struct {
	Name, Type, URL    string
	Secret, RoutingKey string
	Kinds, Statuses    []string
}

// accepts reports whether the webhook's filters let a through.
func (w Webhook) accepts(a schemas.Alert) bool {
	if len(w.Kinds) > 0 && !slices.Contains(w.Kinds, a.Kind) {
		return false
	}
	return len(w.Statuses) == 0 || slices.Contains(w.Statuses, status(a))
}

// status is a's lifecycle status; alerts without one are firing.
func status(a schemas.Alert) string {
	if a.Status == "" {
		return schemas.AlertFiring
	}
	return a.Status
}

// LoadFile reads and validates a webhooks file, resolving the secrets its
// *_env keys name from the environment.
func LoadFile(path string) ([]Webhook, error) {
	data, err := yamlstrict.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading webhooks %q: %w", path, err)
	}
	hooks, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("webhooks %q: %w", path, err)
	}
	return hooks, nil
}

// Parse decodes a webhooks file strictly and validates it, reporting every
// problem with its path (webhooks[1].url: …). lookup reads environment
// variables. No error message contains a secret or a URL.
func Parse(data []byte, lookup func(string) (string, bool)) ([]Webhook, error) {
	var f File
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, err
	}
	var p yamlstrict.Problems
	if len(f.Webhooks) == 0 {
		p.Add("webhooks", "is empty; list at least one, or unset alerts.webhooks_path")
	}
	if len(f.Webhooks) > MaxWebhooks {
		p.Add("webhooks", "%d webhooks are more than the limit of %d", len(f.Webhooks), MaxWebhooks)
	}
	// value resolves a key given inline or by an environment variable.
	value := func(at, key, inline, envName string) string {
		switch {
		case inline != "" && envName != "":
			p.Add(at+"."+key, "set either %s or %s_env, not both", key, key)
		case envName != "":
			v, ok := lookup(envName)
			if !ok || v == "" {
				p.Add(at+"."+key+"_env", "environment variable %s is not set or empty", envName)
			}
			return v
		}
		return inline
	}
	seen := map[string]int{}
	out := make([]Webhook, 0, len(f.Webhooks))
	for i, c := range f.Webhooks {
		at := fmt.Sprintf("webhooks[%d]", i)
		w := Webhook{Name: c.Name, Type: c.Type, Kinds: c.Kinds, Statuses: c.Statuses}
		switch {
		case c.Name == "":
			p.Add(at+".name", "is required (lower-case letters, digits, _ . -)")
		case !namePattern.MatchString(c.Name):
			p.Add(at+".name", "%q must be 1-64 lower-case letters, digits, _ . - starting with a letter or digit", c.Name)
		default:
			if j, dup := seen[c.Name]; dup {
				p.Add(at+".name", "%q is also the name of webhooks[%d]; names must be unique", c.Name, j)
			}
			seen[c.Name] = i
		}
		w.URL = value(at, "url", c.URL, c.URLEnv)
		w.Secret = value(at, "secret", c.Secret, c.SecretEnv)
		w.RoutingKey = value(at, "routing_key", c.RoutingKey, c.RoutingKeyEnv)
		switch c.Type {
		case TypeGeneric:
			if w.Secret == "" && c.SecretEnv == "" {
				p.Add(at+".secret", "is required for a generic webhook, so the receiver can verify X-Aivis-Signature (prefer secret_env)")
			}
		case TypeSlack:
		case TypePagerDuty:
			if w.RoutingKey == "" && c.RoutingKeyEnv == "" {
				p.Add(at+".routing_key", "is required for a pagerduty webhook: the integration key of an Events API v2 service (prefer routing_key_env)")
			}
			if w.URL == "" && c.URLEnv == "" {
				w.URL = PagerDutyEventsURL
			}
		case "":
			p.Add(at+".type", "is required: generic, slack or pagerduty")
		default:
			p.Add(at+".type", "%q must be generic, slack or pagerduty", c.Type)
		}
		if c.Type != TypeGeneric && (c.Secret != "" || c.SecretEnv != "") {
			p.Add(at+".secret", "only generic webhooks are signed; remove it")
		}
		if c.Type != TypePagerDuty && (c.RoutingKey != "" || c.RoutingKeyEnv != "") {
			p.Add(at+".routing_key", "only pagerduty webhooks have a routing key; remove it")
		}
		if w.URL == "" && c.URLEnv == "" {
			p.Add(at+".url", "is required (or url_env)")
		} else if w.URL != "" {
			// The URL may carry a token, so the problem never quotes it.
			if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				p.Add(at+".url", "must be an absolute http or https URL")
			}
		}
		for j, k := range c.Kinds {
			if k != schemas.AlertCostAnomaly && k != schemas.AlertBudget {
				p.Add(fmt.Sprintf("%s.kinds[%d]", at, j), "%q must be %s or %s", k, schemas.AlertCostAnomaly, schemas.AlertBudget)
			}
		}
		for j, s := range c.Statuses {
			if s != schemas.AlertFiring && s != schemas.AlertUpdated && s != schemas.AlertResolved {
				p.Add(fmt.Sprintf("%s.statuses[%d]", at, j), "%q must be firing, updated or resolved", s)
			}
		}
		out = append(out, w)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
