package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// authFailureFlush is how often the auth-failure counts go to Kafka.
const authFailureFlush = 10 * time.Second

// maxAuthFailureAddresses bounds the addresses counted per minute; the
// rest are counted as "_other", so that a flood from many addresses
// cannot grow the table without bound.
const maxAuthFailureAddresses = 4096

// OtherAddress is the address the failures beyond maxAuthFailureAddresses
// in a minute are counted under.
const OtherAddress = "_other"

type authKey struct {
	minute int64 // Unix seconds
	addr   string
}

// authFailures counts requests refused for a missing or unknown token, per
// source address (the connection's peer: a proxy in front of ingest
// appears as itself) and minute. Every flush sends the counts of the
// current and the previous minute in full; the governance evaluator keeps
// the last count of each (minute, address, node), so a resend replaces.
type authFailures struct {
	node  string
	total prometheus.Counter
	lost  prometheus.Counter

	mu     sync.Mutex
	counts map[authKey]int64
}

func newAuthFailures(reg prometheus.Registerer) (*authFailures, error) {
	var errs []error
	a := &authFailures{counts: map[authKey]int64{}}
	a.total = register(reg, &errs, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aivis_ingest_auth_failures_total",
		Help: "Requests refused for a missing or unknown bearer token; per source address they go to " + schemas.TopicSecurity + ".",
	}))
	a.lost = register(reg, &errs, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aivis_ingest_auth_failure_reports_failed_total",
		Help: "Flushes of the per-address auth-failure counts to " + schemas.TopicSecurity + " that Kafka refused; the counts are sent again on the next flush while their minute is recent.",
	}))
	host, _ := os.Hostname()
	a.node = host + ":" + strconv.Itoa(os.Getpid())
	return a, errors.Join(errs...)
}

// record counts one refused request from remoteAddr (host:port) at now.
func (a *authFailures) record(remoteAddr string, now time.Time) {
	a.total.Inc()
	addr := remoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		addr = host
	}
	k := authKey{minute: now.Unix() / 60 * 60, addr: addr}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.counts[k]; !ok && len(a.counts) >= maxAuthFailureAddresses {
		k.addr = OtherAddress
	}
	a.counts[k]++
}

// flush produces the counts and forgets minutes older than the previous
// one, which will not be sent again.
func (a *authFailures) flush(ctx context.Context, p Producer, now time.Time) error {
	a.mu.Lock()
	keep := now.Unix()/60*60 - 60
	var recs []*kgo.Record
	for k, n := range a.counts {
		v, _ := json.Marshal(schemas.AuthFailureCount{Minute: time.Unix(k.minute, 0).UTC(), SourceAddress: k.addr, Node: a.node, Failures: n})
		recs = append(recs, &kgo.Record{Topic: schemas.TopicSecurity, Key: []byte(k.addr), Value: v})
		if k.minute < keep {
			delete(a.counts, k)
		}
	}
	a.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		a.lost.Inc()
		return fmt.Errorf("producing %d auth-failure counts to %s: %w", len(recs), schemas.TopicSecurity, err)
	}
	return nil
}

// FlushAuthFailures sends the per-address auth-failure counts to
// TopicSecurity now; Serve does so every 10 seconds.
func (s *Server) FlushAuthFailures(ctx context.Context) error {
	return s.authFail.flush(ctx, s.producer, s.now())
}

// reportAuthFailures flushes every authFailureFlush until ctx is done.
func (s *Server) reportAuthFailures(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(authFailureFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
			if err := s.FlushAuthFailures(fctx); err != nil {
				log.Warn("reporting auth failures", "err", err)
			}
			cancel()
		}
	}
}
