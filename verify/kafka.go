package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
)

// span is the part of one topic a scan reads: per partition, the offsets
// [start, end).
type span map[int32]offsets

type offsets struct{ start, end int64 }

// records is how many offsets the span covers: an upper bound of the
// records it holds.
func (s span) records() int64 {
	var n int64
	for _, o := range s {
		n += max(0, o.end-o.start)
	}
	return n
}

// listSpan returns, per partition of topic, the first offset with a Kafka
// timestamp at or after from and the first at or after to; a zero to means
// the current end of the partition.
func listSpan(ctx context.Context, adm *kadm.Client, topic string, from, to time.Time) (span, error) {
	starts, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
	if err == nil {
		err = topicError(topic, starts)
	}
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s at %s: %w", topic, from.Format(time.RFC3339), err)
	}
	var ends kadm.ListedOffsets
	if to.IsZero() {
		ends, err = adm.ListEndOffsets(ctx, topic)
	} else {
		ends, err = adm.ListOffsetsAfterMilli(ctx, to.UnixMilli(), topic)
	}
	if err == nil {
		err = topicError(topic, ends)
	}
	if err != nil {
		return nil, fmt.Errorf("listing the end offsets of %s: %w", topic, err)
	}
	sp := span{}
	starts.Each(func(o kadm.ListedOffset) { sp[o.Partition] = offsets{start: o.Offset, end: o.Offset} })
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := sp[o.Partition]; ok {
			s.end = max(o.Offset, s.start)
			sp[o.Partition] = s
		}
	})
	return sp, nil
}

func topicError(topic string, l kadm.ListedOffsets) error {
	var errs []error
	l.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err == nil:
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			errs = append(errs, fmt.Errorf("topic %s does not exist (check the topic name and kafka.brokers)", topic))
		default:
			errs = append(errs, fmt.Errorf("partition %d: %w", o.Partition, o.Err))
		}
	})
	if len(l) == 0 {
		errs = append(errs, fmt.Errorf("topic %s does not exist (check the topic name and kafka.brokers)", topic))
	}
	return errors.Join(errs...)
}

// scanIdle is how long a scan waits for the next records of a partition
// that has not reached its end offset before it gives up.
var scanIdle = 30 * time.Second

// scan reads every record of sp from topic, partition by partition in
// offset order, and calls fn with each. It stops at each partition's end
// offset; records appended later are not read.
func scan(ctx context.Context, d bus.Dialer, topic string, sp span, fn func(*kgo.Record) error) error {
	from := map[int32]int64{}
	pending := map[int32]int64{}
	for p, o := range sp {
		if o.start < o.end {
			from[p], pending[p] = o.start, o.end
		}
	}
	if len(pending) == 0 {
		return nil
	}
	cl, err := d.Reader("verify", topic, from)
	if err != nil {
		return err
	}
	defer cl.Close()
	var lastErr error
	progress := time.Now()
	for len(pending) > 0 {
		pctx, cancel := context.WithTimeout(ctx, scanIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if fs.IsClientClosed() {
			return fmt.Errorf("reading %s: the Kafka client closed", topic)
		}
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				lastErr = fmt.Errorf("partition %d: %w", p, err)
			}
		})
		if fs.Empty() {
			if time.Since(progress) < scanIdle {
				continue
			}
			return fmt.Errorf("reading %s: no records for %s while partitions still had records to read (partition → end offset %v); last error: %v",
				topic, scanIdle, pending, lastErr)
		}
		progress = time.Now()
		var ferr error
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := pending[r.Partition]
			if ferr != nil || !ok || r.Offset >= end {
				return
			}
			ferr = fn(r)
			if r.Offset+1 >= end {
				delete(pending, r.Partition)
				cl.PauseFetchPartitions(map[string][]int32{topic: {r.Partition}})
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}
