package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// pykafkaPython returns the interpreter of the venv that
// deploy/scripts/pykafka.sh installs confluent-kafka into:
// AIVISDEV_PYKAFKA_VENV, or <repo>/.aivis/pykafka-venv. Locally a missing
// venv skips the test; under CI=true it fails it.
func pykafkaPython(t *testing.T) string {
	t.Helper()
	return testenv.VenvPython(t, "AIVISDEV_PYKAFKA_VENV", "pykafka-venv", "confluent_kafka, google.protobuf, grpc_tools", "confluent-kafka, protobuf and grpcio-tools (Python)", "deploy/scripts/pykafka.sh")
}

// TestPythonSubscriber runs docs/examples/subscribe_enriched.py, the
// example docs/topics.md points subscribers to, with confluent-kafka from
// PyPI against what separate ingest and enrich processes wrote to the real
// broker: with the default codec, with zstd, and with the protobuf form
// (enrich.output_format: protobuf), read through the module protoc
// generates from schemas/enriched_v1.proto as the example's docstring
// shows. Every event must arrive, counted once although some were sent
// twice, with the team and the exact cost the hand-written rates give.
func TestPythonSubscriber(t *testing.T) {
	py := pykafkaPython(t)
	for _, c := range []struct {
		name, codec, format string
		id                  int16
	}{{"snappy", "snappy", "json", 2}, {"zstd", "zstd", "json", 4}, {"protobuf", "snappy", "protobuf", 2}} {
		codec, id := c.codec, c.id
		t.Run(c.name, func(t *testing.T) {
			l := newLayout(t, 3)
			l.start("ingest", "ingest", "--kafka.compression", codec)
			l.start("enrich", "enrich", "--kafka.compression", codec, "--enrich.output_format", c.format)
			l.waitReady("ingest", 60*time.Second)
			l.waitReady("enrich", 60*time.Second)

			want := map[string]*e2eTotal{}
			wantIDs := map[string]string{} // event id → team
			var lines [][]byte
			now := time.Now().UTC()
			const n = 300
			for i := range n {
				model := []string{"model-a", "model-b"}[i%2]
				team := []string{"search", "chat", "ops"}[i%3]
				in, read, out := int64(1000+i), int64(i%500), int64(1+i%700)
				id := fmt.Sprintf("pysub-%s-%04d", codec, i)
				b, _ := json.Marshal(map[string]any{
					"schema_version": "1", "event_id": id, "time": now.Add(-time.Duration(n-i) * time.Second).Format(time.RFC3339Nano),
					"kind": "llm.request", "source": "pysub", "provider": map[string]string{"model-a": "openai", "model-b": "anthropic"}[model],
					"model": model, "status": "ok", "labels": map[string]string{"team": team},
					"usage": map[string]int64{"input_tokens": in, "cache_read_input_tokens": read, "output_tokens": out},
				})
				lines = append(lines, b)
				wantIDs[id] = team
				addExpected(want, model, team, in, read, 0, out)
			}
			for i := 0; i < n; i += 5 {
				lines = append(lines, lines[i]) // resent: the subscriber must count them once
			}
			l.post(lines)

			// enrich has written every record before the subscriber starts
			// (it stops after 5 s without one).
			deadline := time.Now().Add(60 * time.Second)
			for recordsIn(t, l.brokers, schemas.TopicEnriched) < int64(len(lines)) {
				if time.Now().After(deadline) {
					t.Fatalf("enrich wrote %d of %d records; log:\n%s", recordsIn(t, l.brokers, schemas.TopicEnriched), len(lines), l.log("enrich"))
				}
				time.Sleep(200 * time.Millisecond)
			}
			if jsonRecs, protoRecs := enrichedForms(t, l.ctx, l.brokers); (c.format == "protobuf") != (protoRecs == len(lines)) || jsonRecs+protoRecs != len(lines) {
				t.Errorf("the enriched topic holds %d JSON and %d protobuf records, want %d %s", jsonRecs, protoRecs, len(lines), c.format)
			}
			for p, c := range testenv.BatchCodecs(t, l.brokers, schemas.TopicEnriched) {
				if c != id {
					t.Errorf("%s[%d] holds codec %d, want %d (%s)", schemas.TopicEnriched, p, c, id, codec)
				}
			}

			script := "../../docs/examples/subscribe_enriched.py"
			if c.format == "protobuf" {
				// As the docstring says: the generated module beside
				// the script.
				dir := t.TempDir()
				b, err := os.ReadFile(script)
				if err != nil {
					t.Fatal(err)
				}
				script = filepath.Join(dir, "subscribe_enriched.py")
				if err := os.WriteFile(script, b, 0o644); err != nil {
					t.Fatal(err)
				}
				protoc := exec.Command(py, "-m", "grpc_tools.protoc", "-I", "schemas", "--python_out", dir, "schemas/enriched_v1.proto")
				protoc.Dir = "../.."
				if out, err := protoc.CombinedOutput(); err != nil {
					t.Fatalf("protoc: %v\n%s", err, out)
				}
			}
			cmd := exec.CommandContext(l.ctx, py, script,
				"--brokers", strings.Join(l.brokers, ","), "--group", "pysub-"+l.db, "--from-beginning", "--idle-seconds", "5", "--events")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("the Python subscriber: %v\n%s", err, stderr.Bytes())
			}
			got := map[string]string{}
			totals := map[string]string{}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "{") {
					var ev struct {
						EventID   string `json:"event_id"`
						Team      string `json:"team"`
						CostPicos int64  `json:"cost_picos"`
					}
					if err := json.Unmarshal([]byte(line), &ev); err != nil {
						t.Fatalf("subscriber line %q: %v", line, err)
					}
					if _, dup := got[ev.EventID]; dup {
						t.Errorf("the subscriber counted %s twice", ev.EventID)
					}
					got[ev.EventID] = ev.Team
					continue
				}
				team, usd, ok := strings.Cut(line, "\t")
				if !ok {
					t.Fatalf("subscriber line %q is neither an event nor a team total", line)
				}
				totals[team] = usd
			}
			if len(got) != len(wantIDs) {
				t.Errorf("the subscriber counted %d events, want %d", len(got), len(wantIDs))
			}
			for id, team := range wantIDs {
				if got[id] != team {
					t.Errorf("event %s: team %q, want %q", id, got[id], team)
				}
			}
			// Dollars exactly: the picos of each team over its models,
			// shifted 12 places as the example prints them.
			picos := map[string]int64{}
			for k, w := range want {
				_, team, _ := strings.Cut(k, "/")
				picos[team] += w.CostPicos
			}
			for team, p := range picos {
				r := new(big.Rat).SetFrac(big.NewInt(p), big.NewInt(1e12))
				if g, ok := new(big.Rat).SetString(strings.TrimSuffix(totals[team], " USD")); !ok || g.Cmp(r) != 0 {
					t.Errorf("team %s: the subscriber totals %q, want %s USD", team, totals[team], r.FloatString(12))
				}
			}
			l.stopAll()
		})
	}
}

// recordsIn returns how many records topic holds: the sum of its
// partitions' end offsets (it is never truncated in a test).
func recordsIn(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := bus.Dialer{Brokers: brokers, ClientID: "test"}.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, end := range ends {
		n += end
	}
	return n
}
