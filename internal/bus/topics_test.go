package bus

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func topicsCluster(t *testing.T) (*kfake.Cluster, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, kadm.NewClient(cl)
}

// answerMetadata makes c answer the next metadata requests that name
// topics with the given error codes, one request each, in order; later
// requests get the cluster's own answers. It returns how many it has
// answered so far.
func answerMetadata(c *kfake.Cluster, codes ...int16) (answered func() int) {
	var mu sync.Mutex
	n := 0
	host, port, _ := net.SplitHostPort(c.ListenAddrs()[0])
	p, _ := strconv.Atoi(port)
	c.ControlKey(int16(kmsg.Metadata), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.MetadataRequest)
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		if len(req.Topics) == 0 || n == len(codes) {
			return nil, nil, false
		}
		code := codes[n]
		n++
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.Version = req.Version
		resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: c.CurrentNode(), Host: host, Port: int32(p)}}
		resp.ControllerID = c.CurrentNode()
		for _, rt := range req.Topics {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = rt.Topic
			mt.ErrorCode = code
			resp.Topics = append(resp.Topics, mt)
		}
		return resp, nil, true
	})
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestEnsureWarnsOnFewerPartitions: existing topics keep their partition
// count, and one below kafka.partitions is reported with the fix.
func TestEnsureWarnsOnFewerPartitions(t *testing.T) {
	c, adm := topicsCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, "t.raw"); err != nil {
		t.Fatal(err)
	}
	st, err := Ensure(ctx, adm, c.ListenAddrs(), TopicPlan{Topics: []string{"t.raw", "t.new"}, Partitions: 6, Replication: 1, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Partitions["t.raw"] != 2 || st.Partitions["t.new"] != 6 || len(st.Created) != 1 || st.Created[0] != "t.new" {
		t.Fatalf("state %+v", st)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "topic t.raw has 2 partitions, fewer than kafka.partitions=6") ||
		!strings.Contains(st.Warnings[0], "--alter --topic t.raw --partitions 6") {
		t.Fatalf("warnings %q", st.Warnings)
	}
}

// TestEnsureReadsPartitionsOfTopicCreatedMeanwhile: a topic missing from the
// first metadata answer (created by another process a moment before, or not
// yet known to the broker asked) makes CreateTopics answer "already
// exists"; its partition count is read from the broker, not assumed to be
// the configured one, so a short topic is still reported.
func TestEnsureReadsPartitionsOfTopicCreatedMeanwhile(t *testing.T) {
	c, adm := topicsCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, "t.raw"); err != nil {
		t.Fatal(err)
	}
	answered := answerMetadata(c, kerr.UnknownTopicOrPartition.Code)
	st, err := Ensure(ctx, adm, c.ListenAddrs(), TopicPlan{Topics: []string{"t.raw"}, Partitions: 6, Replication: 1, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if answered() != 1 {
		t.Fatalf("the first metadata answer was not intercepted (%d)", answered())
	}
	if st.Partitions["t.raw"] != 2 || len(st.Created) != 0 {
		t.Fatalf("state %+v, want t.raw read as 2 partitions and nothing created", st)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "topic t.raw has 2 partitions") {
		t.Fatalf("warnings %q", st.Warnings)
	}
}

// TestEnsureStopsOnMetadataErrors: a topic the broker says exists but
// whose metadata answers with an error other than "not known yet" (here
// no describe rights) ends Ensure with that error instead of waiting.
func TestEnsureStopsOnMetadataErrors(t *testing.T) {
	c, adm := topicsCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, "t.raw"); err != nil {
		t.Fatal(err)
	}
	answerMetadata(c, kerr.UnknownTopicOrPartition.Code, kerr.TopicAuthorizationFailed.Code)
	start := time.Now()
	_, err := Ensure(ctx, adm, c.ListenAddrs(), TopicPlan{Topics: []string{"t.raw"}, Partitions: 6, Replication: 1, Create: true})
	if err == nil || !strings.Contains(err.Error(), "t.raw") || !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("err = %v, want the authorization error of t.raw", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Ensure took %v", time.Since(start))
	}
}
