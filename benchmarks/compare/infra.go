package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// topics are the four aivis topics, created fresh for each measurement
// that needs them empty.
var topics = []string{schemas.TopicRaw, schemas.TopicEnriched, "aivis.deadletter.v1", "aivis.alerts.v1"}

// broker is the private Kafka broker started through deploy/scripts/kafka.sh.
type broker struct {
	port   int
	dir    string
	script string
	addr   string
}

func (b *broker) env() []string {
	return append(os.Environ(), "AIVISDEV_KAFKA_PORT="+strconv.Itoa(b.port), "AIVISDEV_KAFKA_DIR="+b.dir)
}

func (b *broker) run(ctx context.Context, timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.script, args...)
	cmd.Env = b.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", b.script, strings.Join(args, " "), err, out)
	}
	return nil
}

// up wipes the private broker's data and starts it, so every run begins
// with empty topics and no consumer groups.
func (b *broker) up(ctx context.Context) error {
	if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
		c.Close()
		// Someone else's broker on our port would get its aivis topics deleted.
		if _, statErr := os.Stat(filepath.Join(b.dir, "kafka.pid")); statErr != nil {
			return fmt.Errorf("%s already answers and is not the benchmark's broker (%s); pick another port with -kafka-port", b.addr, b.dir)
		}
	}
	if err := b.run(ctx, 60*time.Second, "down", "--wipe"); err != nil {
		return err
	}
	return b.run(ctx, 180*time.Second, "up")
}

func (b *broker) down() error {
	return b.run(context.Background(), 60*time.Second, "down", "--wipe")
}

func newAdmin(addr string) (*kgo.Client, *kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the private broker %s: %w", addr, err)
	}
	return cl, kadm.NewClient(cl), nil
}

// resetTopics deletes the aivis topics and the given groups, then creates
// the topics again with partitions partitions each.
func resetTopics(ctx context.Context, adm *kadm.Client, partitions int32, groups ...string) error {
	if len(groups) > 0 {
		_, _ = adm.DeleteGroups(ctx, groups...)
	}
	if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
		return fmt.Errorf("deleting the aivis topics on the private broker: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	ids := map[string]kadm.TopicID{}
	for {
		res, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
		if err == nil {
			err = res.Error()
		}
		if err == nil {
			for t, r := range res {
				ids[t] = r.ID
			}
			break
		}
		if !errors.Is(err, kerr.TopicAlreadyExists) || time.Now().After(deadline) {
			return fmt.Errorf("creating the aivis topics with %d partitions: %w", partitions, err)
		}
		// Deletion is asynchronous: drop what was created and try again.
		_, _ = adm.DeleteTopics(ctx, topics...)
		time.Sleep(500 * time.Millisecond)
	}
	// Wait until every partition of the new topics has a leader. The
	// client caches metadata for a few seconds, which would describe the
	// deleted topics of the same names; asking for the authorized
	// operations goes to the broker, and the ids tell new from old.
	fresh := kadm.WithAuthorizedOps(ctx)
	for {
		md, err := adm.Metadata(fresh, topics...)
		ok := err == nil
		for _, t := range topics {
			d, found := md.Topics[t]
			if !found || d.Err != nil || len(d.Partitions) != int(partitions) || d.ID != ids[t] {
				ok = false
				break
			}
			for _, p := range d.Partitions {
				if p.Err != nil || p.Leader < 0 {
					ok = false
				}
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the aivis topics have no leaders 60 s after creation (metadata error: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// produce writes recs to topic keyed as given and returns the value bytes.
func produce(ctx context.Context, addr, topic string, keys, values [][]byte) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var bytes int64
	var mu sync.Mutex
	var first error
	for i := range values {
		bytes += int64(len(values[i]))
		cl.Produce(ctx, &kgo.Record{Key: keys[i], Value: values[i]}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flushing %d records to %s: %w", len(values), topic, err)
	}
	if first != nil {
		return 0, fmt.Errorf("producing to %s: %w", topic, first)
	}
	return bytes, nil
}

// commitToStart commits offset 0 of every partition of topic for group, so
// that a consumer that starts at the committed offset reads it all.
func commitToStart(ctx context.Context, adm *kadm.Client, group, topic string) error {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("listing the start offsets of %s: %w", topic, err)
	}
	var os kadm.Offsets
	starts.Each(func(o kadm.ListedOffset) {
		os.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	res, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("committing %s's start offsets for group %s: %w", topic, group, err)
	}
	return nil
}

// ch is a connection to the shared ClickHouse.
func connectCH(ctx context.Context, addr, database string) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{addr}, Auth: clickhouse.Auth{Database: database, Username: "default"},
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		return nil, fmt.Errorf("pinging ClickHouse at %s (set -clickhouse or AIVISDEV_CLICKHOUSE_ADDR): %w", addr, err)
	}
	return conn, nil
}

func queryUint(ctx context.Context, conn driver.Conn, q string) (uint64, error) {
	var v uint64
	if err := conn.QueryRow(ctx, q).Scan(&v); err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	return v, nil
}

// waitUntil polls cond every interval until it reports done, returns an
// error, or timeout passes (then the last progress text goes into the error).
func waitUntil(ctx context.Context, what string, timeout, interval time.Duration, cond func(context.Context) (bool, string, error)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		done, progress, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		last = progress
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not happen within %s (last seen: %s)", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last seen: %s)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// proc is an aivis process started by the harness.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	exited  chan struct{}
	waitErr error
	ops     string // metrics_addr
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

// startAivis starts bin/aivis with args and env (added to the harness's
// own environment, minus any AIVIS_ variables of the caller).
func startAivis(bin, name, logDir string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AIVIS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s %s: %w", bin, strings.Join(args, " "), err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "AIVIS_METRICS_ADDR="); ok {
			p.ops = v
		}
	}
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// alive fails with the end of the process's log when it has exited.
func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("aivis %s exited (%v); last lines of %s:\n%s", p.name, p.waitErr, p.log, tail(p.log, 15))
	default:
		return nil
	}
}

// stop sends SIGTERM, then SIGKILL after 15 s.
func (p *proc) stop() {
	procsMu.Lock()
	delete(procs, p)
	procsMu.Unlock()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func stopAll() {
	procsMu.Lock()
	var all []*proc
	for p := range procs {
		all = append(all, p)
	}
	procsMu.Unlock()
	for _, p := range all {
		p.stop()
	}
}

// usage is a process's CPU time and peak resident memory so far.
type usage struct {
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func (p *proc) usage() (usage, error) {
	pid := p.cmd.Process.Pid
	cpu, err := pidCPU(pid)
	if err != nil {
		return usage{}, fmt.Errorf("reading the CPU time of aivis %s: %w", p.name, err)
	}
	u := usage{CPUSeconds: cpu}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			u.PeakRSSBytes = kb * 1024
		}
	}
	return u, nil
}

// waitReady polls the process's /readyz.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	return waitUntil(ctx, "aivis "+p.name+" to be ready", timeout, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		if err := p.alive(); err != nil {
			return false, "", err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.ops+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	})
}

// pprof takes the profile kind of /debug/pprof over seconds: "profile"
// for CPU, "allocs" for what was allocated in those seconds.
func (p *proc) pprof(ctx context.Context, kind string, seconds int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+20)*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", p.ops, kind, seconds), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling aivis %s: %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiling aivis %s: %s", p.name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadFrom(resp.Body)
	return err
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a loopback address nobody listens on right now, below
// the kernel's ephemeral ports, where no outgoing connection can take it
// before the process started with it binds it (testenv.PickFreePorts).
func freePort() string {
	port, err := testenv.PickFreePorts(1)
	if err != nil {
		return "127.0.0.1:0"
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}
