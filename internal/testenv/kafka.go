package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultKafkaBrokers is where tests look for Kafka when AIVISDEV_KAFKA_BROKERS
// is unset: the broker that deploy/scripts/kafka.sh starts.
const DefaultKafkaBrokers = "127.0.0.1:19092"

// KafkaBrokers returns the seed brokers from AIVISDEV_KAFKA_BROKERS
// (comma-separated) or DefaultKafkaBrokers, without checking them.
func KafkaBrokers() []string {
	v := os.Getenv("AIVISDEV_KAFKA_BROKERS")
	if strings.TrimSpace(v) == "" {
		v = DefaultKafkaBrokers
	}
	var seeds []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// PingKafka checks that the seed brokers answer a Kafka request within
// timeout.
func PingKafka(seeds []string, timeout time.Duration) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(2*time.Second),
		kgo.RequestRetries(1),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return cl.Ping(ctx)
}

// Kafka returns the seed brokers of a reachable Kafka cluster, from
// AIVISDEV_KAFKA_BROKERS or DefaultKafkaBrokers. An unreachable cluster skips
// the test locally and fails it under CI=true.
func Kafka(t testing.TB) []string {
	t.Helper()
	seeds := KafkaBrokers()
	err := PingKafka(seeds, 5*time.Second)
	RequireOrSkip(t, "Kafka broker at "+strings.Join(seeds, ","), err,
		"start it with `make kafka-up` (deploy/scripts/kafka.sh up) or point AIVISDEV_KAFKA_BROKERS at running brokers")
	return seeds
}

// KafkaDir returns the directory where deploy/scripts/kafka.sh keeps the
// broker's config, data, logs and pid file: AIVISDEV_KAFKA_DIR, or
// <repo>/.aivis/kafka. Fault tests that restart the broker pass it on to the
// script through the environment they inherit.
func KafkaDir() string {
	if d := os.Getenv("AIVISDEV_KAFKA_DIR"); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	root, err := RepoRoot()
	if err != nil {
		return filepath.Join(".aivis", "kafka")
	}
	return filepath.Join(root, ".aivis", "kafka")
}

// KafkaScript returns the absolute path of deploy/scripts/kafka.sh, which
// starts, stops and restarts the test broker (`up`, `down`, `restart`,
// `status`). It is empty when no repository root is found.
func KafkaScript() string {
	root, err := RepoRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, "deploy", "scripts", "kafka.sh")
}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds go.mod. Tests run in their package's
// directory, so this finds the module root from any package.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// BatchCodecs returns the compression codec of every record batch that
// the broker holds at the start of each partition of topic that has one
// (Kafka's attribute bits: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), by
// partition. It reads the stored batches, not what a consumer decodes.
func BatchCodecs(t testing.TB, brokers []string, topic string) map[int32]int16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err == nil {
		err = topics.Error()
	}
	if err != nil {
		t.Fatalf("describing %s: %v", topic, err)
	}
	td := topics[topic]
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes = 100, 4<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, td.ID
	for p := range td.Partitions {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("fetching %s: %v", topic, err)
	}
	out := map[int32]int16{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("fetching %s[%d]: error code %d", topic, p.Partition, p.ErrorCode)
			}
			if len(p.RecordBatches) == 0 {
				continue
			}
			var batch kmsg.RecordBatch
			if err := batch.ReadFrom(p.RecordBatches); err != nil {
				t.Fatalf("reading the first batch of %s[%d]: %v", topic, p.Partition, err)
			}
			out[p.Partition] = batch.Attributes & 0x07
		}
	}
	return out
}
