package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// ConsumerGroup is the group the evaluator reads TopicSecurity in.
const ConsumerGroup = "aivis-governance"

// KafkaFeed reads ingest's auth-failure counts from TopicSecurity with a
// consumer-group client (bus.Dialer.Consumer, which marks and blocks
// rebalances while polled records are handled). A record that does not
// decode is logged and skipped: counts are advisory, and one bad record
// must not stop the others.
type KafkaFeed struct {
	Client *kgo.Client
	Log    *slog.Logger
	// Wait is how long one Fetch waits for records (default 500ms).
	Wait time.Duration

	pending []*kgo.Record
}

// maxFeedRecords bounds what one Fetch holds.
const maxFeedRecords = 50_000

// Fetch returns the counts that arrived, polling until a poll brings none
// within Wait.
func (f *KafkaFeed) Fetch(ctx context.Context) ([]schemas.AuthFailureCount, error) {
	wait := f.Wait
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	var out []schemas.AuthFailureCount
	f.pending = f.pending[:0]
	for len(f.pending) < maxFeedRecords {
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := f.Client.PollRecords(pctx, maxFeedRecords-len(f.pending))
		cancel()
		var errs []error
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
			}
		})
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			f.pending = append(f.pending, r)
			var c schemas.AuthFailureCount
			if err := json.Unmarshal(r.Value, &c); err != nil || c.SourceAddress == "" || c.Minute.IsZero() {
				if f.Log != nil {
					f.Log.Warn("skipping an auth-failure count that does not decode", "partition", r.Partition, "offset", r.Offset, "err", err)
				}
				return
			}
			out = append(out, c)
		})
		if len(errs) > 0 {
			f.Client.AllowRebalance()
			return nil, errors.Join(errs...)
		}
		if n == 0 || ctx.Err() != nil {
			break
		}
	}
	return out, ctx.Err()
}

// Abandon lets a rebalance go on without committing the last Fetch; its
// records are fetched again after a restart or rebalance.
func (f *KafkaFeed) Abandon() {
	f.pending = f.pending[:0]
	f.Client.AllowRebalance()
}

// Commit commits what the last Fetch returned and lets a rebalance go on.
func (f *KafkaFeed) Commit(ctx context.Context) error {
	defer f.Client.AllowRebalance()
	if len(f.pending) == 0 {
		return nil
	}
	f.Client.MarkCommitRecords(f.pending...)
	return f.Client.CommitMarkedOffsets(ctx)
}
