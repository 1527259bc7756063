package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/internal/security"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// TestSecurePipeline runs every stage against the test broker's SASL_SSL
// listener (SCRAM over TLS), with ingest serving HTTPS, ClickHouse over
// TLS as a user with a password and every secret in a file or the
// environment:
//
//   - ingest → enrich → aggregate (with the anomaly scorer and a signed
//     webhook) → ClickHouse, and serving, over SCRAM-SHA-512; loadgen over
//     SCRAM-SHA-256; verify;
//   - both tokens of a producer work (rotation); its team-scoped token
//     reporting for another team is refused with 403 and the index and
//     field, and nothing of that request reaches Kafka or ClickHouse;
//   - a wrong password and a plaintext client are refused with an error
//     that says what to fix;
//   - no secret (the SASL and ClickHouse passwords, the producer tokens,
//     the webhook secret) appears in any log line nor in `config validate
//     --print`.
func TestSecurePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Kafka and ClickHouse")
	}
	broker := testenv.SecureKafka(t)
	addr, db := testenv.ClickHouseDatabase(t)
	chUser, chPassword := testenv.ClickHouseUser(t, addr)
	chTLS := testenv.ClickHouseTLS(t, addr)
	certs := testenv.TestCerts(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	oldToken, newToken := ingest.NewToken(), ingest.NewToken()
	webhookSecret := "whsec-" + ingest.NewToken()
	secrets := map[string]string{"kafka password": broker.Password, "ClickHouse password": chPassword,
		"old producer token": oldToken, "new producer token": newToken, "webhook secret": webhookSecret}
	t.Setenv("AIVIS_CLICKHOUSE__PASSWORD", chPassword)
	t.Setenv("SECURE_TEST_WEBHOOK_SECRET", webhookSecret)
	hooks := write("webhooks.yaml", "webhooks:\n  - name: receiver\n    type: generic\n    url: http://127.0.0.1:9/aivis\n    secret_env: SECURE_TEST_WEBHOOK_SECRET\n")
	path := write("aivis.yaml", fmt.Sprintf(`kafka:
  brokers: [%s]
  partitions: 2
  tls:
    ca_file: %s
  sasl:
    mechanism: SCRAM-SHA-512
    username: %s
    password_file: %s
ingest:
  listen_addr: 127.0.0.1:0
  tls:
    cert_file: %s
    key_file: %s
  producers:
    - name: gw-ml
      token_sha256: %s
      tokens_sha256: [%s]
      teams: [ml]
enrich:
  catalog_path: %s
aggregate:
  group: aivis-aggregate-%s
  flush_interval: 200ms
  idle_timeout: 2s
  score_anomalies: true
clickhouse:
  addr: %s
  database: %s
  username: %s
  tls:
    ca_file: %s
alerts:
  webhooks_path: %s
metrics_addr: ""
`, strings.Join(broker.Brokers, ","), broker.CAFile, broker.User, write("kafka-password", broker.Password+"\n"),
		certs.ServerCert, certs.ServerKey, ingest.HashToken(oldToken), ingest.HashToken(newToken),
		write("catalog.yaml", e2eCatalog), db, chTLS.Addr, db, chUser, chTLS.CAFile, hooks))

	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.Flags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, ctx := startPipeline(t, cfg, "", log)
	if !strings.HasPrefix(p.IngestURL, "https://") {
		t.Fatalf("ingest URL %s is not HTTPS", p.IngestURL)
	}

	tc, err := security.ClientTLS{CAFile: certs.CA}.Config("test")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	at := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Second).Format(time.RFC3339)
	event := func(id, team string) string {
		return `{"schema_version":"1","event_id":"` + id + `","time":"` + at + `","kind":"llm.request","source":"gw-ml","provider":"openai","model":"model-a","usage":{"input_tokens":10,"output_tokens":2},"labels":{"team":"` + team + `"}}`
	}
	post := func(token, body string) (int, ingest.Response) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.IngestURL, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r ingest.Response
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, b)
		}
		return resp.StatusCode, r
	}
	run := fmt.Sprint(time.Now().UnixNano())
	ok1, ok2, in3, out4 := "sec-ok-old-"+run, "sec-ok-new-"+run, "sec-scope-in-"+run, "sec-scope-out-"+run
	if code, r := post(oldToken, event(ok1, "ml")); code != http.StatusAccepted {
		t.Fatalf("old token: %d %+v", code, r)
	}
	if code, r := post(newToken, event(ok2, "ml")); code != http.StatusAccepted {
		t.Fatalf("new token: %d %+v", code, r)
	}
	code, r := post(newToken, event(in3, "ml")+"\n"+event(out4, "finance"))
	if code != http.StatusForbidden || len(r.Errors) != 1 || r.Errors[0].Index != 1 || r.Errors[0].Field != "labels.team" || r.Accepted != 0 {
		t.Fatalf("another team's event: %d %+v; want 403 naming index 1, labels.team", code, r)
	}
	if code, _ := post("not-a-token", event("sec-unknown-"+run, "ml")); code != http.StatusUnauthorized {
		t.Errorf("an unknown token: %d", code)
	}
	plain, err := http.Post(strings.Replace(p.IngestURL, "https://", "http://", 1), "application/json", strings.NewReader(event("x", "ml")))
	if err != nil {
		t.Fatal(err)
	}
	plainBody, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest || !strings.Contains(string(plainBody), "HTTPS") {
		t.Errorf("plain HTTP to ingest: %d %s", plain.StatusCode, plainBody)
	}

	// loadgen produces straight to the raw topic, over SCRAM-SHA-256.
	t.Setenv("AIVIS_KAFKA__SASL__MECHANISM", "SCRAM-SHA-256")
	lcode, lout, lerr := runCLI("loadgen", "--config", path, "--kafka", "--rate", "20", "--duration", "1s")
	if lcode != 0 || !strings.Contains(lout, "sent ") {
		t.Fatalf("loadgen over SASL_SSL: exit %d\n%s%s", lcode, lout, lerr)
	}

	// serving produces what it scrapes from an inference server, over
	// SCRAM-SHA-512 like the pipeline (the same dialer as gpuprobe's).
	t.Setenv("AIVIS_KAFKA__SASL__MECHANISM", "SCRAM-SHA-512")
	deployment := "sec-serving-" + run
	var scrapes atomic.Int32
	vllm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		page := "vllm-1.prom"
		if scrapes.Add(1) > 1 {
			page = "vllm-2.prom"
		}
		b, _ := os.ReadFile(filepath.Join("..", "..", "serving", "testdata", page))
		_, _ = w.Write(b)
	}))
	defer vllm.Close()
	scfg := cfg
	scfg.Serving.TargetsPath = write("targets.yaml", "targets:\n  - deployment: "+deployment+"\n    url: "+vllm.URL+"/metrics\n    kind: vllm\n    labels:\n      team: ml\n")
	scfg.Serving.Interval, scfg.Serving.Timeout = time.Second, time.Second
	sp, err := pipeline.Build(ctx, scfg, pipeline.Options{Stages: []pipeline.Stage{pipeline.Serving}, Log: log})
	if err != nil {
		t.Fatalf("serving over SASL_SSL: %v", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 4*time.Second)
	if err := sp.Run(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("serving: %v", err)
	}
	scancel()
	sp.Close()

	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	rows, err := p.Store.Query(ctx, "SELECT event_id FROM usage_events WHERE event_id IN (?, ?, ?, ?)", ok1, ok2, in3, out4)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	rows.Close()
	if !stored[ok1] || !stored[ok2] || stored[in3] || stored[out4] || len(stored) != 2 {
		t.Errorf("stored %v; want exactly %s and %s (nothing of the refused request)", stored, ok1, ok2)
	}

	// Nothing of the refused request is in the raw topic either.
	d, err := cfg.Kafka.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	ends, err := d.EndOffsets(ctx, schemas.TopicRaw)
	if err != nil {
		t.Fatal(err)
	}
	from := map[int32]int64{}
	for part := range ends {
		from[part] = 0
	}
	reader, err := d.Reader("test", schemas.TopicRaw, from)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for read := map[int32]int64{}; !reachedEnds(read, ends); {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		fs := reader.PollFetches(pctx)
		cancel()
		if err := fs.Err0(); err != nil {
			t.Fatalf("reading the raw topic over SASL_SSL: %v", err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			seen[string(rec.Key)] = true
			if strings.Contains(string(rec.Value), deployment) {
				seen[deployment] = true
			}
			read[rec.Partition] = rec.Offset + 1
		})
	}
	reader.Close()
	if !seen[deployment] {
		t.Errorf("no event of serving's deployment %s in the raw topic (%d scrapes)", deployment, scrapes.Load())
	}
	if !seen[ok1] || !seen[ok2] || seen[in3] || seen[out4] {
		t.Errorf("raw topic: %s %v, %s %v, %s %v, %s %v; want only the first two", ok1, seen[ok1], ok2, seen[ok2], in3, seen[in3], out4, seen[out4])
	}

	// aivis verify reads the raw and dead-letter topics over SASL_SSL.
	_, vout, verr := runCLI("verify", "--config", path, "--from", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339))
	if !strings.Contains(vout, "records read") {
		t.Errorf("verify over SASL_SSL did not read the raw topic:\n%s%s", vout, verr)
	}

	// A wrong password and a plaintext client are refused, saying what to fix.
	wrong := cfg
	wrong.Kafka.SASL.PasswordFile, wrong.Kafka.SASL.Password = "", "wrong-"+broker.Password
	secrets["wrong password"] = wrong.Kafka.SASL.Password
	start := time.Now()
	_, err = pipeline.Build(ctx, wrong, pipeline.Options{Stages: []pipeline.Stage{pipeline.Enrich}, Log: log})
	if err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") || !strings.Contains(err.Error(), "check kafka.sasl.username, kafka.sasl.password") {
		t.Errorf("a wrong password: %v; want the broker's refusal and what to check", err)
	} else if time.Since(start) > 30*time.Second {
		t.Errorf("a wrong password took %s to be reported; it cannot be fixed by retrying", time.Since(start))
	}
	for _, tc := range []struct {
		name, want string
		edit       func(*config.Config)
	}{
		{"plaintext", "set kafka.tls.enabled", func(c *config.Config) { c.Kafka.TLS, c.Kafka.SASL = security.ClientTLS{}, bus.SASL{} }},
		{"TLS without SASL", "set kafka.sasl", func(c *config.Config) { c.Kafka.SASL = bus.SASL{} }},
	} {
		c := cfg
		tc.edit(&c)
		var blogs syncBuffer
		bctx, cancel := context.WithTimeout(ctx, 12*time.Second)
		_, err := pipeline.Build(bctx, c, pipeline.Options{Stages: []pipeline.Stage{pipeline.Enrich},
			Log: slog.New(slog.NewTextHandler(&blogs, nil))})
		cancel()
		if err == nil || !strings.Contains(err.Error()+blogs.String(), tc.want) {
			t.Errorf("%s client: %v\n%s\nwant it refused, saying %q", tc.name, err, blogs.String(), tc.want)
		}
		_, _ = logs.Write([]byte(blogs.String()))
	}

	// Nothing secret in any log line, nor in config validate --print.
	vcode, pout, perr := runCLI("config", "validate", "--config", path, "--print")
	if vcode != 0 || !strings.Contains(pout, "password: <set>") || !strings.Contains(pout, "password_file: ") {
		t.Errorf("config validate --print: exit %d\n%s%s", vcode, pout, perr)
	}
	outputs := map[string]string{"the pipeline's logs": logs.String(), "config validate --print": pout + perr,
		"loadgen": lout + lerr, "verify": vout + verr}
	if !strings.Contains(logs.String(), `"level":"INFO"`) {
		t.Error("nothing was logged")
	}
	for where, text := range outputs {
		for name, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s is in %s", name, where)
			}
		}
	}
}

// reachedEnds reports whether read has reached every end offset.
func reachedEnds(read, ends map[int32]int64) bool {
	for part, end := range ends {
		if end > 0 && read[part] < end {
			return false
		}
	}
	return true
}
