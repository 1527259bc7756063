package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

func newKafka(t *testing.T) (*kfake.Cluster, *kgo.Client, Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, schemas.TopicRaw))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	cfg := testConfig()
	cl, err := kgo.NewClient(append(ClientOptions(cfg), kgo.SeedBrokers(c.ListenAddrs()...))...)
	if err != nil {
		c.Close()
		t.Fatalf("creating the producer client: %v", err)
	}
	return c, cl, cfg
}

// 202 comes after the broker acknowledged, and the records are on the raw
// topic keyed by event_id, one id always on one partition.
func TestKafkaAcceptedAfterAck(t *testing.T) {
	c, cl, cfg := newKafka(t)
	defer c.Close()
	defer cl.Close()
	h := newTestServer(t, cfg, cl).Handler()

	body := "[" + event("01A") + "," + event("01B") + "," + event("01C") + "]"
	for range 2 { // the second submission is a client retry with the same ids
		rec, resp := call{body: body, token: testToken}.do(t, h)
		if rec.Code != http.StatusAccepted || resp.Accepted != 3 {
			t.Fatalf("code %d accepted %d; body %s", rec.Code, resp.Accepted, rec.Body)
		}
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(schemas.TopicRaw),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	partitions := map[string]map[int32]bool{}
	n := 0
	for n < 6 {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consuming %s after %d records: %v", schemas.TopicRaw, n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			e, err := schemas.Decode(r.Value)
			if err != nil {
				t.Errorf("record value does not decode: %v", err)
				return
			}
			if string(r.Key) != e.EventID {
				t.Errorf("key %q, event_id %q", r.Key, e.EventID)
			}
			if partitions[e.EventID] == nil {
				partitions[e.EventID] = map[int32]bool{}
			}
			partitions[e.EventID][r.Partition] = true
		})
	}
	for id, ps := range partitions {
		if len(ps) != 1 {
			t.Errorf("event %s landed on partitions %v, want one", id, ps)
		}
	}
	if len(partitions) != 3 {
		t.Errorf("got events %v, want 01A, 01B, 01C", partitions)
	}
}

// With the cluster gone, the client is told to retry, not that its events
// were stored.
func TestKafkaUnavailable(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.TopicRaw))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	addrs := c.ListenAddrs()
	c.Close()
	cfg := testConfig()
	cfg.ProduceTimeout = 300 * time.Millisecond
	cl, err := kgo.NewClient(append(ClientOptions(cfg), kgo.SeedBrokers(addrs...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h := newTestServer(t, cfg, cl).Handler()
	start := time.Now()
	rec, resp := call{body: event("01A"), token: testToken}.do(t, h)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code = %d, want 503; body %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Retry-After") == "" || !strings.Contains(resp.Error, "retry") {
		t.Fatalf("no retry advice: Retry-After %q, error %q", rec.Header().Get("Retry-After"), resp.Error)
	}
	if d := time.Since(start); d > cfg.ProduceTimeout+produceGrace+time.Second {
		t.Fatalf("answered after %s, want about produce_timeout", d)
	}
}
