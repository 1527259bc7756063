// Package alerts delivers the alerts aivis raises (schemas.Alert: cost
// anomalies and budget thresholds) to HTTP receivers: a generic signed
// JSON webhook, Slack incoming webhooks and PagerDuty's Events API v2.
//
// Alerts enter through Publish, the same contract aggregate.AlertSink and
// budget.AlertSink state; Fanout sends them to the alerts topic first and
// then to the webhooks. Each webhook is delivered to on its own goroutine
// with bounded retries (network errors, 5xx, 429 with Retry-After), so a
// slow or failing receiver delays neither the others nor the topic.
// Delivery is at least once: receivers deduplicate by alert_id (generic),
// or by incident (PagerDuty's dedup_key).
package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/schemas"
)

// Sink publishes alerts: it returns once they are delivered or given up.
// aggregate.KafkaAlerts and Webhooks satisfy it.
type Sink interface {
	Publish(ctx context.Context, alerts []schemas.Alert) error
}

// Outcomes of one delivery, the outcome label of
// aivis_alert_webhook_deliveries_total.
const (
	OutcomeDelivered = "delivered"
	// OutcomeRejected: the receiver answered a 4xx other than 408 and
	// 429; sending the same request again cannot succeed.
	OutcomeRejected = "rejected"
	// OutcomeGaveUp: every attempt failed (network, 5xx, 429, 408), or
	// the context ended first.
	OutcomeGaveUp = "gave_up"
)

// Header names of generic deliveries.
const (
	HeaderTimestamp = "X-Aivis-Timestamp"
	HeaderSignature = "X-Aivis-Signature"
	HeaderAlertID   = "X-Aivis-Alert-Id"
)

// Webhooks delivers alerts to HTTP receivers. It is safe for concurrent use.
type Webhooks struct {
	cfg     Config
	hooks   []Webhook
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
	metrics webhookMetrics
}

type webhookMetrics struct {
	deliveries *prometheus.CounterVec
	retries    *prometheus.CounterVec
}

// NewWebhooks returns a sink for hooks (from LoadFile). reg may be nil.
func NewWebhooks(cfg Config, hooks []Webhook, reg prometheus.Registerer, log *slog.Logger) *Webhooks {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Webhooks{
		cfg: cfg, hooks: hooks, log: log,
		// Redirects are not followed: a receiver that moved is an
		// operator's change to make, and a redirect must not carry the
		// signature elsewhere.
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now:    time.Now,
		sleep:  sleepCtx,
		metrics: webhookMetrics{
			deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "aivis_alert_webhook_deliveries_total",
				Help: "Alert deliveries to webhooks by outcome: delivered, rejected (permanent 4xx) or gave_up (attempts exhausted).",
			}, []string{"webhook", "outcome"}),
			retries: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "aivis_alert_webhook_retries_total",
				Help: "Webhook requests sent again after a network error, 5xx, 408 or 429.",
			}, []string{"webhook"}),
		},
	}
	for _, h := range hooks {
		for _, o := range []string{OutcomeDelivered, OutcomeRejected, OutcomeGaveUp} {
			w.metrics.deliveries.WithLabelValues(h.Name, o)
		}
		w.metrics.retries.WithLabelValues(h.Name)
	}
	if reg != nil {
		reg.MustRegister(w.metrics.deliveries, w.metrics.retries)
	}
	return w
}

// Publish delivers each alert to every webhook whose filters accept it.
// Webhooks are served concurrently, the alerts of one webhook in order.
// The error joins the deliveries that failed; each was logged and counted.
func (w *Webhooks) Publish(ctx context.Context, alerts []schemas.Alert) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, h := range w.hooks {
		wg.Go(func() {
			for _, a := range alerts {
				if !h.accepts(a) {
					continue
				}
				if err := w.deliver(ctx, h, a); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("webhook %s, alert %s: %w", h.Name, a.AlertID, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// errPermanent marks an answer that retrying cannot change.
var errPermanent = errors.New("permanent")

// deliver sends one alert to one webhook, retrying transient failures.
func (w *Webhooks) deliver(ctx context.Context, h Webhook, a schemas.Alert) error {
	body, err := Body(h, a)
	if err != nil {
		w.metrics.deliveries.WithLabelValues(h.Name, OutcomeRejected).Inc()
		return err
	}
	backoff := w.cfg.Backoff
	var last error
	for attempt := 1; ; attempt++ {
		retryAfter, err := w.send(ctx, h, a, body)
		if err == nil {
			w.metrics.deliveries.WithLabelValues(h.Name, OutcomeDelivered).Inc()
			if attempt > 1 {
				w.log.Info("alert delivered after retries", "webhook", h.Name, "alert", a.AlertID, "attempts", attempt)
			}
			return nil
		}
		last = err
		if errors.Is(err, errPermanent) {
			w.metrics.deliveries.WithLabelValues(h.Name, OutcomeRejected).Inc()
			w.log.Error("webhook rejected the alert; fix the webhook's configuration or the receiver", "webhook", h.Name, "type", h.Type, "alert", a.AlertID, "err", err)
			return err
		}
		if attempt >= w.cfg.MaxAttempts || ctx.Err() != nil {
			break
		}
		// Full jitter in [backoff/2, backoff], so receivers recovering from
		// an outage are not hit by every sender at once.
		d := backoff/2 + rand.N(backoff/2+1)
		d = min(max(d, retryAfter), w.cfg.MaxBackoff)
		backoff = min(2*backoff, w.cfg.MaxBackoff)
		w.metrics.retries.WithLabelValues(h.Name).Inc()
		w.log.Debug("retrying webhook", "webhook", h.Name, "alert", a.AlertID, "attempt", attempt, "in", d, "err", err)
		if err := w.sleep(ctx, d); err != nil {
			last = errors.Join(last, err)
			break
		}
	}
	w.metrics.deliveries.WithLabelValues(h.Name, OutcomeGaveUp).Inc()
	w.log.Warn("giving up delivering an alert to a webhook", "webhook", h.Name, "type", h.Type, "alert", a.AlertID, "attempts", w.cfg.MaxAttempts, "err", last)
	return last
}

// send makes one request. It returns the receiver's Retry-After, if any,
// and an error wrapping errPermanent when retrying cannot help. Errors
// never contain the URL: it may hold a token.
func (w *Webhooks) send(ctx context.Context, h Webhook, a schemas.Alert, body []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", errPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aivis-alerts")
	if h.Type == TypeGeneric {
		ts := strconv.FormatInt(w.now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(h.Secret, ts, body))
		req.Header.Set(HeaderAlertID, a.AlertID)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("sending: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return 0, nil
	case c == http.StatusTooManyRequests || c == http.StatusRequestTimeout || c >= 500:
		return retryAfter(resp.Header.Get("Retry-After"), w.now()), fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return 0, fmt.Errorf("receiver answered %s: %q: %w", resp.Status, snippet, errPermanent)
	}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Sign returns the X-Aivis-Signature of a generic delivery: the hex
// HMAC-SHA256, keyed by the webhook's secret, of the X-Aivis-Timestamp
// value, a dot and the request body.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a generic delivery as a receiver should: the signature
// matches and the timestamp lies within tolerance of now, so a captured
// request cannot be replayed later.
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q is not Unix seconds", timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp is %s away from now, more than %s", d.Round(time.Second), tolerance)
	}
	want, _ := hex.DecodeString(Sign(secret, timestamp, body))
	got, err := hex.DecodeString(signature)
	if err != nil || !hmac.Equal(want, got) {
		return errors.New("signature does not match")
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Fanout publishes to the alerts topic first, then to the webhooks, so a
// receiver that is down never delays the topic; a topic that is down does
// not stop the webhooks either. Webhooks may be nil.
type Fanout struct {
	Topic    Sink
	Webhooks Sink
}

// Publish publishes to both and joins their errors.
func (f Fanout) Publish(ctx context.Context, alerts []schemas.Alert) error {
	var errs []error
	if f.Topic != nil {
		errs = append(errs, f.Topic.Publish(ctx, alerts))
	}
	if f.Webhooks != nil {
		errs = append(errs, f.Webhooks.Publish(ctx, alerts))
	}
	return errors.Join(errs...)
}
