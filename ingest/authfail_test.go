package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aivis-dev/aivis/schemas"
)

// TestAuthFailuresPerAddress: refused tokens are counted per source
// address and minute and sent to aivis.security.v1 in full on every flush;
// a good token is not counted; minutes older than the previous one are
// sent one last time and forgotten; a refused flush is counted.
func TestAuthFailuresPerAddress(t *testing.T) {
	p := &fakeProducer{}
	s, err := New(testConfig(), p, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 1, 10, 0, 30, 0, time.UTC)
	s.now = func() time.Time { return clock }
	h := s.Handler()
	send := func(addr, token string) int {
		r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(`{}`))
		r.RemoteAddr = addr
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for range 3 {
		if code := send("10.0.0.1:5555", "aivis_wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d", code)
		}
	}
	send("[2001:db8::1]:443", "aivis_wrong")
	send("10.0.0.2:1", testToken) // authenticated: not a failure
	ctx := context.Background()
	if err := s.FlushAuthFailures(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range p.records() {
		var c schemas.AuthFailureCount
		if err := json.Unmarshal(r.Value, &c); err != nil {
			t.Fatal(err)
		}
		if r.Topic != schemas.TopicSecurity || string(r.Key) != c.SourceAddress || c.Node == "" {
			t.Errorf("record %s key %s: %+v", r.Topic, r.Key, c)
		}
		got[fmt.Sprintf("%s@%s", c.SourceAddress, c.Minute.Format("15:04"))] = c.Failures
	}
	if len(got) != 2 || got["10.0.0.1@10:00"] != 3 || got["2001:db8::1@10:00"] != 1 {
		t.Fatalf("counts %v", got)
	}
	if n := testCounter(t, s.authFail.total); n != 4 {
		t.Errorf("aivis_ingest_auth_failures_total = %v, want 4", n)
	}

	// Two minutes later the 10:00 counts go once more, then no more.
	clock = clock.Add(2 * time.Minute)
	send("10.0.0.1:5555", "aivis_wrong")
	p.recs = nil
	if err := s.FlushAuthFailures(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(p.records()); n != 3 {
		t.Fatalf("second flush sent %d counts, want 3 (the old minute's two and the new one)", n)
	}
	p.recs = nil
	if err := s.FlushAuthFailures(ctx); err != nil || len(p.records()) != 1 {
		t.Fatalf("third flush: %v, %d counts, want only the current minute", err, len(p.records()))
	}

	p.err = errors.New("broker down")
	if err := s.FlushAuthFailures(ctx); err == nil || testCounter(t, s.authFail.lost) != 1 {
		t.Fatalf("a refused flush: err %v, lost %v", err, testCounter(t, s.authFail.lost))
	}
}

// TestAuthFailuresBounded: a flood from more addresses than the bound is
// counted under OtherAddress, not one entry each.
func TestAuthFailuresBounded(t *testing.T) {
	a, err := newAuthFailures(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for i := range maxAuthFailureAddresses + 10 {
		a.record(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255), at)
	}
	if len(a.counts) != maxAuthFailureAddresses+1 || a.counts[authKey{minute: at.Unix(), addr: OtherAddress}] != 10 {
		t.Fatalf("%d entries, %d under %s", len(a.counts), a.counts[authKey{minute: at.Unix(), addr: OtherAddress}], OtherAddress)
	}
}

func testCounter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}
