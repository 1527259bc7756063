// Package bus holds aivis's Kafka conventions in one place: the client
// options of each role (producer, group consumer), the topics each stage
// needs and how they are checked and created, the dead-letter record and its
// counter, the retry backoff, lag queries, and the embedded in-process
// cluster that `aivis dev` and unit tests run on.
package bus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// Topics are the topics aivis uses, all created with the configured
// partitions.
var Topics = []string{schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter, schemas.TopicAlerts, schemas.TopicSecurity}

// Dialer makes the Kafka clients of one process. Every client it makes
// shares the seed brokers, the client id prefix and Extra (TLS, SASL); the
// role decides the rest. The caller closes what it is given.
type Dialer struct {
	Brokers  []string
	ClientID string
	// Compression names the codec of every batch produced (see Codec);
	// empty is snappy.
	Compression string
	// Extra options are appended to every client's options.
	Extra []kgo.Opt
}

// Codecs are the names Codec knows, the default first.
var Codecs = []string{"snappy", "lz4", "zstd", "gzip", "none"}

// Codec returns the compression codec of a kafka.compression name, or an
// error that lists the names.
func Codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kafka.compression: %q is not a codec; use one of %s", name, strings.Join(Codecs, ", "))
}

// NewDialer returns the Dialer of a process whose clients reach brokers
// with sec (TLS, SASL), or an error naming the key that is wrong.
func NewDialer(brokers []string, clientID string, sec Security) (Dialer, error) {
	opts, err := sec.Options()
	if err != nil {
		return Dialer{}, err
	}
	return Dialer{Brokers: brokers, ClientID: clientID, Extra: opts}, nil
}

// base are the options of every client: seed brokers, client id
// "<ClientID>-<role>", acks from all in-sync replicas (with kgo's idempotent
// writes), a short linger, and key hashing so one event id always lands on
// one partition.
func (d Dialer) base(role string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(d.Brokers...),
		kgo.ClientID(d.ClientID + "-" + role),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}
	// An unknown name was refused when the configuration was validated.
	if c, err := Codec(d.Compression); err == nil && d.Compression != "" {
		opts = append(opts, kgo.ProducerBatchCompression(c))
	}
	return opts
}

// Producer returns a client for a role that only produces.
func (d Dialer) Producer(role string, opts ...kgo.Opt) (*kgo.Client, error) {
	return d.client(role, opts)
}

// Consumer returns a client that consumes topic as a member of group:
// offsets are committed only as the stage marks them, no rebalance happens
// while a polled batch is being handled (the stage calls AllowRebalance),
// and a group without committed offsets starts at the beginning.
func (d Dialer) Consumer(role, group, topic string, opts ...kgo.Opt) (*kgo.Client, error) {
	return d.client(role, append([]kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
	}, opts...))
}

// Reader returns a client that reads the given partitions of one topic
// from the given offsets, outside any consumer group and committing
// nothing: for tools that scan a bounded part of a topic (aivis verify).
func (d Dialer) Reader(role, topic string, from map[int32]int64, opts ...kgo.Opt) (*kgo.Client, error) {
	offsets := make(map[int32]kgo.Offset, len(from))
	for p, o := range from {
		offsets[p] = kgo.NewOffset().At(o)
	}
	return d.client(role, append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
	}, opts...))
}

func (d Dialer) client(role string, opts []kgo.Opt) (*kgo.Client, error) {
	all := append(d.base(role), opts...)
	all = append(all, d.Extra...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("creating the %s Kafka client for %v: %w", role, d.Brokers, err)
	}
	return cl, nil
}

// Admin returns an admin client; close the *kgo.Client it wraps with
// Close on the returned value.
func (d Dialer) Admin() (*kadm.Client, error) {
	cl, err := d.client("admin", nil)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// Backoff is the wait before retry attempt (0-based): 100 ms doubling up to
// max.
func Backoff(attempt int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Sleep waits d or until ctx is done, and says whether the full wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// GroupLag returns the total lag of a consumer group on a topic: records
// between its committed offsets and the end of each partition.
func (d Dialer) GroupLag(ctx context.Context, group, topic string) (int64, error) {
	adm, err := d.Admin()
	if err != nil {
		return 0, err
	}
	defer adm.Close()
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
func (d Dialer) EndOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	adm, err := d.Admin()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	ends, err := adm.ListEndOffsets(ctx, topic)
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
