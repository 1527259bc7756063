package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/schemas"
)

// aivis dev --exit ends with the alerts subscribers received, read back
// from the alerts topic, each cost anomaly with its top contributor.
func TestDevPrintsTheAlertsRaised(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	t0 := time.Date(2026, 11, 29, 3, 19, 0, 0, time.UTC)
	sent := []schemas.Alert{
		{AlertID: "a1", Kind: schemas.AlertCostAnomaly, WindowStart: t0, Team: "search", Model: "gpt-4o", CostUSD: "0.16", BaselineUSD: "0.03",
			IncidentID: "search/gpt-4o:1", Status: schemas.AlertFiring,
			Contributors: []schemas.Contributor{{Dimension: "api_key_id", Key: "key-search-7", CostUSD: "0.12", BaselineUSD: "0.02"}}},
		{AlertID: "a2", Kind: schemas.AlertCostAnomaly, WindowStart: t0.Add(20 * time.Minute), Team: "search", Model: "gpt-4o", CostUSD: "0.04",
			BaselineUSD: "0.03", IncidentID: "search/gpt-4o:1", Status: schemas.AlertResolved},
	}
	for _, a := range sent {
		b, _ := json.Marshal(a)
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: schemas.TopicAlerts, Key: []byte(a.AlertID), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := readAlerts(ctx, bus.Dialer{Brokers: c.ListenAddrs(), ClientID: "test"})
	if err != nil || len(got) != 2 || got[0].AlertID != "a1" || got[1].AlertID != "a2" {
		t.Fatalf("read %+v, %v", got, err)
	}
	var out bytes.Buffer
	printAlerts(&out, got)
	for _, want := range []string{"ALERTS RAISED", "firing", "resolved", "search/gpt-4o", "api_key_id key-search-7 (0.12, baseline 0.02)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	printAlerts(&out, nil)
	if !strings.Contains(out.String(), "(none)") {
		t.Errorf("no alerts printed as %q", out.String())
	}
}
