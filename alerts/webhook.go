// Package alerts delivers the alerts aivis raises (schemas.Alert: cost
// anomalies and budget thresholds) to HTTP receivers: a generic signed
// JSON webhook, Slack incoming webhooks and PagerDuty's Events API v2.
//
// Alerts enter through Publish, the same contract aggregate.AlertSink and
// budget.AlertSink state; Fanout sends them to the alerts topic first and,
// once the topic has them, to the webhooks. Publish only queues: each
// webhook has a bounded queue and a goroutine that delivers from it with
// bounded retries (network errors, 5xx, 429 with Retry-After), so a slow
// or failing receiver delays neither the others, nor the topic, nor the
// scorer. A full queue drops new alerts (logged and counted); Close drains
// the queues, bounded by a deadline.
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

// Sink publishes alerts. aggregate.KafkaAlerts returns once the topic has
// them; Webhooks once they are queued for its receivers.
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

// Reasons an alert was dropped without a delivery attempt, the reason
// label of aivis_alert_webhook_dropped_total.
const (
	// DropQueueFull: the webhook's queue was full (its receiver is down or
	// slower than alerts come).
	DropQueueFull = "queue_full"
	// DropShutdown: the process stopped before the alert's turn came
	// (alerts.drain_timeout passed), or after the queues were closed.
	DropShutdown = "shutdown"
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

	// The queues, one per webhook, and their workers: started by the
	// first Publish (or Run), closed by Close.
	start   sync.Once
	mu      sync.Mutex // guards closed against sends on closed queues
	closed  bool
	queues  []chan schemas.Alert
	work    context.Context
	abandon context.CancelFunc
	workers sync.WaitGroup
}

type webhookMetrics struct {
	deliveries *prometheus.CounterVec
	retries    *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	queued     *prometheus.GaugeVec
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
			dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "aivis_alert_webhook_dropped_total",
				Help: "Alerts never sent to a webhook: its queue was full (queue_full) or the process stopped first (shutdown).",
			}, []string{"webhook", "reason"}),
			queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "aivis_alert_webhook_queued",
				Help: "Alerts waiting for a webhook, the one being delivered included.",
			}, []string{"webhook"}),
		},
	}
	w.work, w.abandon = context.WithCancel(context.Background())
	for _, h := range hooks {
		for _, o := range []string{OutcomeDelivered, OutcomeRejected, OutcomeGaveUp} {
			w.metrics.deliveries.WithLabelValues(h.Name, o)
		}
		for _, r := range []string{DropQueueFull, DropShutdown} {
			w.metrics.dropped.WithLabelValues(h.Name, r)
		}
		w.metrics.retries.WithLabelValues(h.Name)
		w.metrics.queued.WithLabelValues(h.Name)
		w.queues = append(w.queues, make(chan schemas.Alert, max(1, cfg.QueueSize)))
	}
	if reg != nil {
		reg.MustRegister(w.metrics.deliveries, w.metrics.retries, w.metrics.dropped, w.metrics.queued)
	}
	return w
}

// Publish queues each alert for every webhook whose filters accept it and
// returns at once: it never waits for a receiver. An alert that finds its
// webhook's queue full is dropped, logged and counted; the error names
// the drops (the alerts topic, which Fanout published to first, has them).
func (w *Webhooks) Publish(_ context.Context, alerts []schemas.Alert) error {
	w.start.Do(w.startWorkers)
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i, h := range w.hooks {
		for _, a := range alerts {
			if !h.accepts(a) {
				continue
			}
			reason := DropShutdown
			if !w.closed {
				select {
				case w.queues[i] <- a:
					w.metrics.queued.WithLabelValues(h.Name).Inc()
					continue
				default:
					reason = DropQueueFull
				}
			}
			w.metrics.dropped.WithLabelValues(h.Name, reason).Inc()
			w.log.Error("alert dropped for a webhook: its queue is full (the receiver is down or slow; see aivis_alert_webhook_deliveries_total) or aivis is stopping",
				"webhook", h.Name, "type", h.Type, "alert", a.AlertID, "reason", reason, "queue_size", cap(w.queues[i]))
			errs = append(errs, fmt.Errorf("webhook %s, alert %s: dropped (%s)", h.Name, a.AlertID, reason))
		}
	}
	return errors.Join(errs...)
}

func (w *Webhooks) startWorkers() {
	for i, h := range w.hooks {
		q := w.queues[i]
		w.workers.Go(func() {
			for a := range q {
				if w.work.Err() != nil {
					w.metrics.dropped.WithLabelValues(h.Name, DropShutdown).Inc()
					w.log.Warn("alert not delivered to a webhook: aivis stopped before its turn (alerts.drain_timeout)", "webhook", h.Name, "alert", a.AlertID)
				} else {
					_ = w.deliver(w.work, h, a)
				}
				w.metrics.queued.WithLabelValues(h.Name).Dec()
			}
		})
	}
}

// Close stops taking alerts and delivers the ones queued until ctx is
// done; then it abandons the rest (counted as dropped, reason shutdown)
// and the deliveries under way. It waits for the workers either way, and
// may be called more than once.
func (w *Webhooks) Close(ctx context.Context) error {
	w.start.Do(w.startWorkers)
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, q := range w.queues {
			close(q)
		}
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		w.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		w.abandon()
		return nil
	case <-ctx.Done():
		w.abandon()
		<-done
		return fmt.Errorf("webhook queues not drained before the deadline; the rest was dropped: %w", ctx.Err())
	}
}

// Run is Webhooks as a pipeline actor: the queues drain when ctx is done,
// for at most alerts.drain_timeout. Stop it after whatever publishes.
func (w *Webhooks) Run(ctx context.Context) error {
	w.start.Do(w.startWorkers)
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), w.cfg.DrainTimeout)
	defer cancel()
	if err := w.Close(dctx); err != nil {
		w.log.Warn("stopping alert webhooks", "err", err)
	}
	return nil
}

// Deliver sends each alert to every webhook whose filters accept it and
// waits: webhooks are served concurrently, the alerts of one webhook in
// order. The error joins the deliveries that failed; each was logged and
// counted. It bypasses the queues.
func (w *Webhooks) Deliver(ctx context.Context, alerts []schemas.Alert) error {
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

// Fanout publishes to the alerts topic first and then hands the alerts to
// the webhooks, which queue them (Webhooks.Publish does not wait for a
// receiver). The topic is the record: while it fails, the publisher keeps
// the alerts and tries again, and the webhooks get them once the topic has
// them, so a receiver hears each alert once rather than on every retry.
// Webhooks may be nil; without a Topic the webhooks get every call.
type Fanout struct {
	Topic    Sink
	Webhooks Sink
}

// Publish returns the topic's error: what the webhooks could not take is
// logged and counted by them, and must not make the publisher publish to
// the topic again.
func (f Fanout) Publish(ctx context.Context, alerts []schemas.Alert) error {
	if f.Topic != nil {
		if err := f.Topic.Publish(ctx, alerts); err != nil {
			return err
		}
	}
	if f.Webhooks != nil {
		_ = f.Webhooks.Publish(ctx, alerts)
	}
	return nil
}
