package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func randomName(t testing.TB, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("naming a test object: %v", err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// kafkaTopic creates a fresh topic with the given partitions (replication
// factor 1) and deletes it, and groups named in *groups, when the test ends.
func kafkaTopic(t *testing.T, seeds []string, partitions int32, groups *[]string) string {
	t.Helper()
	topic := randomName(t, "aivis-test-")
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		cl.Close()
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if groups != nil && len(*groups) > 0 {
			if _, err := adm.DeleteGroups(ctx, *groups...); err != nil {
				t.Errorf("deleting test groups %v: %v", *groups, err)
			}
		}
		if _, err := adm.DeleteTopics(ctx, topic); err != nil {
			t.Errorf("deleting test topic %s: %v", topic, err)
		}
	})
	return topic
}

func produceN(t *testing.T, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{
			Topic: topic,
			Key:   []byte("k" + strconv.Itoa(i)),
			Value: []byte(fmt.Sprintf(`{"seq":%d}`, i)),
		})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing %d records to %s: %v", n, topic, err)
	}
}

// consumeN polls a group consumer until it has n records, checks that each
// key k<from>…k<from+n-1> arrived exactly once and commits the offsets.
func consumeN(t *testing.T, seeds []string, topic, group string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		t.Fatalf("consumer client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := make(map[string]int, n)
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records from %s before timing out: %v", got, n, topic, err)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("fetching %s[%d]: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Key)]++
			got++
		})
	}
	if got != n {
		t.Fatalf("consumed %d records from %s, want %d", got, topic, n)
	}
	for i := from; i < from+n; i++ {
		if k := "k" + strconv.Itoa(i); seen[k] != 1 {
			t.Fatalf("key %s seen %d times, want once", k, seen[k])
		}
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("committing offsets of group %s: %v", group, err)
	}
}

// committedTotal sums the group's committed offsets on topic.
func committedTotal(t *testing.T, seeds []string, topic, group string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetching offsets of group %s: %v", group, err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			t.Fatalf("offset of %s[%d] in group %s: %v", o.Topic, o.Partition, group, o.Err)
		}
		if o.Topic == topic {
			total += o.At
		}
	})
	return total
}

func producer(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	if err != nil {
		t.Fatalf("producer client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestKafkaRoundTrip checks the broker that integration tests use: a topic
// created with kadm, 100 records produced with acks=all, consumed back by a
// consumer group, and the group's commit stored.
func TestKafkaRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Kafka broker")
	}
	seeds := Kafka(t)
	var groups []string
	topic := kafkaTopic(t, seeds, 3, &groups)
	group := randomName(t, "aivis-test-group-")
	groups = append(groups, group)

	produceN(t, producer(t, seeds), topic, 0, 100)
	consumeN(t, seeds, topic, group, 0, 100)
	if got := committedTotal(t, seeds, topic, group); got != 100 {
		t.Fatalf("group %s committed %d records in total, want 100", group, got)
	}
}

// TestFaultKafkaRestartKeepsData restarts the broker with
// deploy/scripts/kafka.sh in the middle of a stream and checks that the
// topic, its records and the group's committed offsets survive. It disturbs
// every other test that uses the broker at the same time, so, like every
// TestFault test, make test runs it on its own after the others.
func TestFaultKafkaRestartKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the shared broker")
	}
	seeds := Kafka(t)
	script := KafkaScript()
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("broker script: %v", err)
	}
	var groups []string
	topic := kafkaTopic(t, seeds, 3, &groups)
	group := randomName(t, "aivis-test-group-")
	groups = append(groups, group)

	prod := producer(t, seeds)
	produceN(t, prod, topic, 0, 50)
	consumeN(t, seeds, topic, group, 0, 50)

	start := time.Now()
	cmd := exec.Command(script, "restart")
	cmd.Env = append(os.Environ(), "AIVISDEV_KAFKA_DIR="+KafkaDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s restart: %v\n%s", script, err, out)
	}
	t.Logf("broker restarted in %v", time.Since(start).Round(time.Millisecond))

	// The producer made before the restart reconnects by itself.
	produceN(t, prod, topic, 50, 50)
	if got := committedTotal(t, seeds, topic, group); got != 50 {
		t.Fatalf("after restart group %s has %d committed, want 50", group, got)
	}
	// The group resumes after its commit: only the 50 new records.
	consumeN(t, seeds, topic, group, 50, 50)
	// A fresh group reads all 100 from the start: nothing was lost.
	fresh := randomName(t, "aivis-test-group-")
	groups = append(groups, fresh)
	consumeN(t, seeds, topic, fresh, 0, 100)
}

// dashClusterID returns a random cluster id whose text starts with "-":
// 16 bytes whose first six bits are 111110, base64url's "-".
func dashClusterID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[0] = 0xF8 | b[0]&0x03
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TestFaultKafkaScriptClusterIDDash starts a second, private broker with
// deploy/scripts/kafka.sh on its own ports and data dir, formatted with a
// cluster id that starts with "-" (one random id in 64 does, and the
// storage tool once took it for an option, so the broker never started),
// checks that it answers with that id, and removes it with down --wipe.
// It starts a JVM next to the shared broker, so it runs with the fault
// tests, one at a time.
func TestFaultKafkaScriptClusterIDDash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker")
	}
	script := KafkaScript()
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("broker script: %v", err)
	}
	java := "java"
	if home := os.Getenv("JAVA_HOME"); home != "" {
		java = filepath.Join(home, "bin", "java")
	}
	_, err := exec.LookPath(java)
	RequireOrSkip(t, "Java 17+", err, "install it (apt-get install openjdk-17-jre-headless) or set JAVA_HOME; make kafka-up does")

	port := FreePorts(t, 3)
	dir := filepath.Join(t.TempDir(), "kafka")
	id := dashClusterID(t)
	env := append(os.Environ(),
		"AIVISDEV_KAFKA_PORT="+strconv.Itoa(port),
		"AIVISDEV_KAFKA_DIR="+dir,
		"AIVISDEV_KAFKA_CLUSTER_ID="+id,
		"AIVISDEV_KAFKA_HEAP=256m",
		"AIVISDEV_KAFKA_JVM_OPTS=-Xms64m",
		"AIVISDEV_KAFKA_WAIT=120",
	)
	kafkaSh := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Registered before up, so that a failed start is cleaned up too.
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		if out, err := kafkaSh(time.Minute, "down", "--wipe"); err != nil {
			t.Errorf("kafka.sh down --wipe: %v\n%s", err, out)
		}
	})

	t.Logf("starting a broker on 127.0.0.1:%d with cluster id %s", port, id)
	if out, err := kafkaSh(3*time.Minute, "up"); err != nil {
		t.Fatalf("kafka.sh up with cluster id %s: %v\n%s", id, err, out)
	}
	seeds := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	cl.Close()
	if err != nil {
		t.Fatalf("broker on %s does not answer: %v", seeds[0], err)
	}
	if meta.Cluster != id {
		t.Fatalf("broker on %s has cluster id %q, want %q", seeds[0], meta.Cluster, id)
	}

	out, err := kafkaSh(time.Minute, "down", "--wipe")
	stopped = true
	if err != nil {
		t.Fatalf("kafka.sh down --wipe: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("down --wipe left %s (stat: %v)", dir, err)
	}
	if err := PingKafka(seeds, 3*time.Second); err == nil {
		t.Errorf("%s still answers after down", seeds[0])
	}
}

// TestKafkaScriptRejectsBadClusterID: a malformed AIVISDEV_KAFKA_CLUSTER_ID
// stops kafka.sh up before it creates anything.
func TestKafkaScriptRejectsBadClusterID(t *testing.T) {
	script := KafkaScript()
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("broker script: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "kafka")
	cmd := exec.Command(script, "up")
	cmd.Env = append(os.Environ(),
		"AIVISDEV_KAFKA_PORT="+strconv.Itoa(FreePorts(t, 3)),
		"AIVISDEV_KAFKA_DIR="+dir,
		"AIVISDEV_KAFKA_CLUSTER_ID=not-a-cluster-id",
	)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "AIVISDEV_KAFKA_CLUSTER_ID must be 22 characters") {
		t.Errorf("kafka.sh up with a bad cluster id: err %v, want a failure that names the variable:\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("kafka.sh up created %s before checking the cluster id", dir)
	}
}
