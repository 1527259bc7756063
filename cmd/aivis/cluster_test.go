package main

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// The cluster tests run on the local cluster of deploy/scripts/cluster.sh
// (`make test-cluster` starts it): a three-broker Kafka KRaft cluster
// (replication factor 3, min.insync.replicas=2) and ClickHouse in 2 shards
// of 2 replicas. See docs/cluster.md.

// TestClusterFaults runs the aggregator as a separate process on the
// cluster and breaks it three times under load: a broker killed with
// SIGKILL, a ClickHouse replica stopped and restarted, and a whole shard
// unavailable for 30 s. After each, the totals must equal the ground truth
// exactly and `aivis verify` must pass on the cluster.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests need the local cluster")
	}
	c := testenv.ClusterAll(t)
	db := c.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	script := testenv.ClusterScript(t)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(script, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("cluster.sh %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	// Whatever happens, leave the cluster whole for the tests after this one.
	t.Cleanup(func() {
		for _, args := range [][]string{{"kafka-start", "2"}, {"ch-start", "1"}, {"ch-start", "2"}, {"ch-start", "3"}} {
			if out, err := exec.Command(script, args...).CombinedOutput(); err != nil {
				t.Errorf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	f := newFaultEnvOn(t, ctx, c.Kafka, 3, strings.Join(c.ClickHouse, ","), db, c.Name)
	a := f.startAggregator("a")
	load := func(seed uint64) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); f.produce(seed, 2000, 8*time.Second) }()
		return &wg
	}

	t.Log("stage 1: a broker killed with SIGKILL under load")
	wg := load(21)
	time.Sleep(3 * time.Second)
	run("kafka-kill", "2")
	wg.Wait()
	f.check(120 * time.Second)
	run("kafka-start", "2")

	t.Log("stage 2: a ClickHouse replica stopped and restarted under load")
	wg = load(22)
	time.Sleep(2 * time.Second)
	run("ch-stop", "1")
	time.Sleep(8 * time.Second)
	run("ch-start", "1")
	wg.Wait()
	f.check(120 * time.Second)

	t.Log("stage 3: shard 2 (both replicas) unavailable for 30 s under load")
	wg = load(23)
	time.Sleep(2 * time.Second)
	run("ch-stop", "2")
	run("ch-stop", "3")
	time.Sleep(30 * time.Second)
	run("ch-start", "2")
	run("ch-start", "3")
	wg.Wait()
	f.check(150 * time.Second)
	f.stop(a)
	if t.Failed() {
		t.Logf("aggregator log:\n%s", f.log("a"))
	}
}
