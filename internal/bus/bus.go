// Package bus is the Kafka plumbing the commands share: client options from
// configuration, topic creation, lag queries and the embedded in-process
// cluster that `aivis dev` and unit tests run on.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// Topics are the topics aivis creates, all with the configured partitions.
var Topics = []string{schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter, schemas.TopicAlerts}

// Opts returns the base client options for the given brokers.
func Opts(brokers []string, clientID string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}
}

// EnsureTopics creates the aivis topics that do not exist yet.
func EnsureTopics(ctx context.Context, brokers []string, partitions int32, replication int16) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("connecting to Kafka %v: %w", brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var lastErr error
	for attempt := 0; attempt < 30; attempt++ {
		resp, err := adm.CreateTopics(ctx, partitions, replication, nil, Topics...)
		if err == nil {
			lastErr = nil
			for _, r := range resp.Sorted() {
				if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
					lastErr = fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
				}
			}
			if lastErr == nil {
				return nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("creating aivis topics on %v (is the broker up and reachable?): %w", brokers, lastErr)
}

// GroupLag returns the total lag of a consumer group on a topic: records
// between its committed offsets and the end of each partition.
func GroupLag(ctx context.Context, brokers []string, group, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("fetching offsets of group %s: %w", group, err)
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		switch {
		case !ok || c.At < 0:
			lag += o.Offset
		case o.Offset > c.At:
			lag += o.Offset - c.At
		}
	})
	return lag, nil
}

// EndOffsets returns the end offset of every partition of topic.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// Embedded starts an in-process Kafka-protocol cluster on 127.0.0.1 with
// the aivis topics created. Close it when done.
func Embedded(partitions int32) (*kfake.Cluster, []string, error) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, Topics...),
		kfake.GroupMinSessionTimeout(time.Second),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("starting the embedded Kafka cluster: %w", err)
	}
	return c, c.ListenAddrs(), nil
}
