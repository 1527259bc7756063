package aggregate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/aivis-dev/aivis/schemas"
)

// joined returns a group member of group on a one-partition topic of c,
// once it has its assignment. Its own heartbeats are far apart, so that
// what the coordinator answers the membership checks of a test is the
// test's doing.
func joined(t *testing.T, c *kfake.Cluster, group string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics("t"),
		kgo.SessionTimeout(60*time.Second), kgo.HeartbeatInterval(50*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		cl.PollFetches(ctx)
		cancel()
		if m, g := cl.GroupMetadata(); m != "" && g > 0 {
			return cl
		}
		if time.Now().After(deadline) {
			t.Fatal("the member did not join within 20 s")
		}
	}
}

func TestMembershipConfirm(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := joined(t, c, "g")
	ctx := context.Background()
	now := time.Now()
	m := &membership{cl: cl, group: "g", session: 60 * time.Second, now: func() time.Time { return now }}

	// A member of the current generation, the group stable: a write may
	// take until the session could end, less the margin.
	until, err := m.confirm(ctx)
	if err != nil {
		t.Fatalf("a member of a stable group: %v", err)
	}
	if want := now.Add(54 * time.Second); !until.Equal(want) {
		t.Errorf("write deadline %v after now, want 54s", until.Sub(now))
	}

	// A rebalance is in progress: the partitions stay the member's until
	// the rebalance times out, counted from the last stable answer.
	rebalancing := func() {
		c.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
			resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = kerr.RebalanceInProgress.Code
			return resp, nil, true
		})
	}
	now = now.Add(30 * time.Second)
	rebalancing()
	if until, err = m.confirm(ctx); err != nil {
		t.Fatalf("rebalancing, 30 s after the last stable answer: %v", err)
	}
	if want := m.stableAt.Add(54 * time.Second); !until.Equal(want) {
		t.Errorf("write deadline %v after the last stable answer, want 54s (the rebalance timeout less the margin)", until.Sub(m.stableAt))
	}
	now = now.Add(24 * time.Second)
	rebalancing()
	if _, err = m.confirm(ctx); !errors.Is(err, errUnconfirmed) {
		t.Errorf("rebalancing, 54 s after the last stable answer: %v, want errUnconfirmed", err)
	}

	// The member was removed from the group (its session ended while it
	// was paused): what it holds belongs to the partition's next owner.
	member, _ := cl.GroupMetadata()
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}}
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := leave.RequestWith(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err = m.confirm(ctx); !errors.Is(err, errFenced) {
		t.Errorf("after the member was removed: %v, want errFenced", err)
	}

	// A coordinator that does not answer in time (franz-go retries one
	// that is loading): the write waits.
	m.session = 3 * time.Second
	c.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp, nil, true
	})
	if _, err = m.confirm(ctx); !errors.Is(err, errUnconfirmed) {
		t.Errorf("coordinator loading: %v, want errUnconfirmed", err)
	}
}

// TestStageFencedWritesNothing: a replica that no longer owns its
// partitions writes none of its flush and keeps it; once it owns them
// again it writes it.
func TestStageFencedWritesNothing(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := joined(t, c, "g")
	s, sink := flushStage(t, cl)
	s.member = &membership{cl: cl, group: "g", session: 60 * time.Second, now: time.Now}
	s.engine.Assign(0, schemas.PartitionHistory{}, t0)
	s.engine.AddBatch(0, []Input{{Offset: 0, Event: ev("e1", t0, "m", "t", 1, 1, 1)}}, t0, nil)

	var fenced atomic.Bool
	fenced.Store(true)
	c.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !fenced.Load() {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	if err := s.flushLocked(context.Background(), true); !errors.Is(err, errFenced) {
		t.Fatalf("flush of a fenced replica: %v, want errFenced", err)
	}
	if len(sink.writes) != 0 {
		t.Fatalf("a fenced replica wrote %d times", len(sink.writes))
	}
	if err := s.fencedLocked(errFenced); err != nil {
		t.Fatalf("just fenced: %v", err)
	}
	if st := s.engine.Stats(); st.PendingEvents != 1 {
		t.Fatalf("after the refused flush: %+v, want the event still pending", st)
	}
	s.fencedSince = s.now().Add(-3 * time.Minute)
	if err := s.fencedLocked(errFenced); err == nil {
		t.Fatal("fenced for 3 minutes without the client rejoining: want an error that ends Run")
	}

	fenced.Store(false)
	if err := s.flushLocked(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if len(sink.writes) != 1 || !s.fencedSince.IsZero() {
		t.Fatalf("%d writes, fenced since %v; want the flush written and the fence cleared", len(sink.writes), s.fencedSince)
	}
}

// flushStage is a stage on cl that writes to a writesSink, its clock
// stopped at t0.
func flushStage(t *testing.T, cl *kgo.Client) (*Stage, *writesSink) {
	reg := prometheus.NewRegistry()
	sink := &writesSink{}
	cfg := testConfig()
	return &Stage{cfg: cfg, cl: cl, sink: sink, engine: NewEngine(cfg), log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		now: func() time.Time { return t0 }, metrics: newStageMetrics(reg), spend: newSpendMetrics(reg),
		epochs: map[int32]int32{}, assigned: map[int32]bool{}}, sink
}
