package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/capacity"
)

// TestCLICapacityPlan runs the plan over the repository's measured
// inputs: the table has a column per rate, the JSON the same plans that
// capacity.Compute gives, and bad flags say what to change.
func TestCLICapacityPlan(t *testing.T) {
	bench := filepath.Join("..", "..", capacity.DefaultBenchmarkPath)
	storage := filepath.Join("..", "..", capacity.DefaultStoragePath)
	inputs := []string{"--benchmark", bench, "--storage", storage}
	code, stdout, stderr := runCLI(append([]string{"capacity", "plan", "--events-per-second", "1000,10000,100000", "--retention-days", "30"}, inputs...)...)
	if code != 0 {
		t.Fatalf("aivis capacity plan: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"1,000 events/s", "100,000 events/s", "partitions per topic", "shards (disk · CPU)", "dedup_memory_mib per replica", "benchmarks/results/capacity.json"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the plan lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCLI(append([]string{"capacity", "plan", "--events-per-second", "10000", "--retention-days", "30", "--format", "json", "--dedup-bytes-per-id", "40"}, inputs...)...)
	if code != 0 {
		t.Fatalf("aivis capacity plan --format json: exit %d\n%s", code, stderr)
	}
	var res struct {
		Plans []capacity.Plan `json:"plans"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("decoding the JSON plan: %v\n%s", err, stdout)
	}
	in, err := capacity.LoadInputs(bench, storage)
	if err != nil {
		t.Fatal(err)
	}
	d := capacity.DefaultDemand()
	d.EventsPerSecond, d.Retention, d.DedupBytesPerID = 10_000, 30*24*time.Hour, 40
	want, err := capacity.Compute(in, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plans) != 1 || res.Plans[0].Shards != want.Shards || res.Plans[0].Partitions != want.Partitions ||
		res.Plans[0].DedupBytes != want.DedupBytes || res.Plans[0].KafkaBrokers != want.KafkaBrokers {
		t.Errorf("JSON plans %+v, want %+v", res.Plans, want)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--events-per-second is required"},
		{[]string{"--events-per-second", "1000", "--headroom", "0.5"}, "--headroom"},
		{[]string{"--events-per-second", "1000", "--format", "yaml"}, "--format"},
		{[]string{"--events-per-second", "1000", "--storage", filepath.Join(t.TempDir(), "none.json")}, "aivis capacity measure"},
	} {
		args := append([]string{"capacity", "plan", "--benchmark", bench, "--storage", storage}, tc.args...)
		code, _, stderr := runCLI(args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("aivis %s: exit %d, want 1 with %q in:\n%s", strings.Join(args, " "), code, tc.want, stderr)
		}
	}
}
