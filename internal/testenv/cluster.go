package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// The local cluster that deploy/scripts/cluster.sh starts (docs/cluster.md):
// ClickHouse nodes 0..3 (node i is shard i/2+1), the cluster's name in their
// remote_servers, and three Kafka brokers.
const (
	DefaultClusterClickHouse = "127.0.0.1:31000,127.0.0.1:31001,127.0.0.1:31002,127.0.0.1:31003"
	DefaultClusterName       = "aivis_cluster"
	DefaultClusterKafka      = "127.0.0.1:31092,127.0.0.1:31094,127.0.0.1:31096"
)

// Cluster is a reachable local cluster.
type Cluster struct {
	// ClickHouse lists the native addresses of the nodes, in the order of
	// cluster.sh's node numbers.
	ClickHouse []string
	// Name is the remote_servers name that clickhouse.cluster takes.
	Name string
	// Kafka lists the brokers; empty from ClusterClickHouse.
	Kafka []string
}

func envList(name, def string) []string {
	v := os.Getenv(name)
	if strings.TrimSpace(v) == "" {
		v = def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

const clusterHow = "start it with `make cluster-up` (deploy/scripts/cluster.sh up) or point AIVISDEV_CLUSTER_CLICKHOUSE, AIVISDEV_CLUSTER_NAME and AIVISDEV_CLUSTER_KAFKA at one"

// ClusterClickHouse returns the ClickHouse nodes of the local cluster, from
// AIVISDEV_CLUSTER_CLICKHOUSE and AIVISDEV_CLUSTER_NAME or the defaults of
// deploy/scripts/cluster.sh; every node must answer and know the cluster.
// An unreachable cluster skips the test locally and fails it under CI=true.
func ClusterClickHouse(t testing.TB) Cluster {
	t.Helper()
	c := Cluster{ClickHouse: envList("AIVISDEV_CLUSTER_CLICKHOUSE", DefaultClusterClickHouse), Name: DefaultClusterName}
	if n := os.Getenv("AIVISDEV_CLUSTER_NAME"); n != "" {
		c.Name = n
	}
	var err error
	for _, addr := range c.ClickHouse {
		if err = pingCluster(addr, c.Name); err != nil {
			break
		}
	}
	RequireOrSkip(t, "the local ClickHouse cluster "+c.Name+" at "+strings.Join(c.ClickHouse, ","), err, clusterHow)
	return c
}

// ClusterAll is ClusterClickHouse plus the cluster's Kafka brokers, from
// AIVISDEV_CLUSTER_KAFKA or DefaultClusterKafka.
func ClusterAll(t testing.TB) Cluster {
	t.Helper()
	c := ClusterClickHouse(t)
	c.Kafka = envList("AIVISDEV_CLUSTER_KAFKA", DefaultClusterKafka)
	RequireOrSkip(t, "the local Kafka cluster at "+strings.Join(c.Kafka, ","), PingKafka(c.Kafka, 10*time.Second), clusterHow)
	return c
}

func pingCluster(addr, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = ?", name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s has no cluster %s in its remote_servers", addr, name)
	}
	return nil
}

// Database returns the name of a fresh database (aivis_test_<random>)
// that is dropped on every node when the test ends; the code under test
// creates it.
func (c Cluster) Database(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("naming a test database: %v", err)
	}
	database := "aivis_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		conn, err := ch.Open(&ch.Options{Addr: c.ClickHouse, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Errorf("connecting to drop test database %s: %v", database, err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+database+"` ON CLUSTER "+c.Name); err != nil {
			t.Errorf("dropping test database %s on cluster %s: %v", database, c.Name, err)
		}
	})
	return database
}

// ClusterScript returns the absolute path of deploy/scripts/cluster.sh,
// which also stops and starts single nodes for the fault tests.
func ClusterScript(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy", "scripts", "cluster.sh")
}
