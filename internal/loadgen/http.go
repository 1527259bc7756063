package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// HTTPSink posts items as NDJSON to an aivis ingest endpoint
// (POST /v1/events). Ingest rejects a whole request when one event in it is
// invalid, so valid items (duplicates included) travel together and every
// malformed item goes alone, where a 400 or 422 answer is the expected
// rejection, not an error. On 429, 502, 503, 504 or a transport error the
// same bytes are resent with backoff (honouring Retry-After), so event ids
// stay stable across retries.
type HTTPSink struct {
	// URL is the ingest endpoint; a URL without a path gets /v1/events.
	URL string
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token  string
	Client *http.Client // nil: a client with a 30 s timeout
	// MaxEvents bounds the events per request (default 500).
	MaxEvents int
	// MaxAttempts bounds tries per request, the first included (default 8).
	MaxAttempts int
	Log         *slog.Logger // nil: slog.Default()

	rejected atomic.Int64
	accepted atomic.Int64 // malformed items ingest let through
	retries  atomic.Int64
}

// HTTPCounts reports what ingest answered, beyond delivery.
type HTTPCounts struct {
	// Rejected malformed items, as expected.
	Rejected int64
	// AcceptedMalformed counts malformed items ingest accepted: an ingest bug.
	AcceptedMalformed int64
	// Retries counts resent requests.
	Retries int64
}

// Counts returns the sink's counters so far.
func (s *HTTPSink) Counts() HTTPCounts {
	return HTTPCounts{Rejected: s.rejected.Load(), AcceptedMalformed: s.accepted.Load(), Retries: s.retries.Load()}
}

// defaultHTTPClient is used when HTTPSink.Client is nil.
var defaultHTTPClient = &http.Client{Timeout: 30 * time.Second}

// Send delivers items; see HTTPSink.
func (s *HTTPSink) Send(ctx context.Context, items []Item) error {
	endpoint, err := s.endpoint()
	if err != nil {
		return err
	}
	per := s.MaxEvents
	if per <= 0 {
		per = 500
	}
	var valid []Item
	for _, it := range items {
		if it.Malformed {
			continue
		}
		valid = append(valid, it)
		if len(valid) == per {
			if err := s.postValid(ctx, endpoint, valid); err != nil {
				return err
			}
			valid = valid[:0]
		}
	}
	if len(valid) > 0 {
		if err := s.postValid(ctx, endpoint, valid); err != nil {
			return err
		}
	}
	for _, it := range items {
		if !it.Malformed {
			continue
		}
		status, body, err := s.post(ctx, endpoint, ndjson([]Item{it}))
		if err != nil {
			return err
		}
		switch {
		case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
			s.rejected.Add(1)
		case status/100 == 2:
			s.accepted.Add(1)
			s.log().Warn("ingest accepted a malformed event; it should answer 400",
				"endpoint", endpoint, "status", status, "event", snippet(it.Raw))
		default:
			return fmt.Errorf("posting a malformed event to %s: got HTTP %d (%s), want 400 or 422", endpoint, status, snippet(body))
		}
	}
	return nil
}

func (s *HTTPSink) postValid(ctx context.Context, endpoint string, items []Item) error {
	status, body, err := s.post(ctx, endpoint, ndjson(items))
	if err != nil {
		return err
	}
	if status/100 != 2 {
		hint := ""
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			hint = "; check the producer token"
		}
		return fmt.Errorf("posting %d events to %s: got HTTP %d (%s)%s", len(items), endpoint, status, snippet(body), hint)
	}
	return nil
}

// post sends body, retrying while the answer says "try again later".
func (s *HTTPSink) post(ctx context.Context, endpoint string, body []byte) (status int, respBody []byte, err error) {
	client := s.Client
	if client == nil {
		client = defaultHTTPClient
	}
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return 0, nil, fmt.Errorf("building a request for %s: %w", endpoint, err)
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		if s.Token != "" {
			req.Header.Set("Authorization", "Bearer "+s.Token)
		}
		var wait time.Duration
		resp, err := client.Do(req)
		if err == nil {
			respBody, _ = io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			_, _ = io.Copy(io.Discard, resp.Body) // drain so the connection is reused
			resp.Body.Close()
			status = resp.StatusCode
			switch status {
			case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				err = fmt.Errorf("HTTP %d (%s)", status, snippet(respBody))
				wait = retryAfter(resp.Header.Get("Retry-After"))
			default:
				return status, respBody, nil
			}
		}
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("posting to %s: %w", endpoint, ctx.Err())
		}
		if attempt >= attempts {
			return 0, nil, fmt.Errorf("posting to %s: still failing after %d attempts (%w); check that ingest and its Kafka cluster are up", endpoint, attempts, err)
		}
		if wait <= 0 {
			wait = backoff
		}
		wait = min(wait, 30*time.Second)
		backoff = min(2*backoff, 5*time.Second)
		s.retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, fmt.Errorf("posting to %s: %w", endpoint, ctx.Err())
		case <-t.C:
		}
	}
}

func (s *HTTPSink) endpoint() (string, error) {
	u, err := url.Parse(s.URL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("parsing the ingest URL %q: want http(s)://host:port[/v1/events]", s.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/events"
	}
	return u.String(), nil
}

func (s *HTTPSink) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func ndjson(items []Item) []byte {
	var b bytes.Buffer
	for _, it := range items {
		b.Write(it.Raw)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// retryAfter parses a Retry-After header given in seconds.
func retryAfter(h string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// snippet shortens a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

var _ Sink = (*HTTPSink)(nil)
