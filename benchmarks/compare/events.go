package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/schemas"
)

// dataset is n raw records: keys are event ids, values canonical events.
type dataset struct {
	keys, values [][]byte
	events       []*schemas.Event
}

// generate returns n valid, distinct events from loadgen, spread over the
// 50 minutes that end 5 minutes ago: inside the event times ingest and the
// aggregator accept however long the run takes (up to ingest's 23 h), and
// never in the future. Seeds differ so that datasets never share ids.
func generate(n int, seed int64) dataset {
	cfg := loadgen.DefaultConfig()
	cfg.DuplicateRate, cfg.MalformedRate, cfg.DiurnalAmplitude, cfg.UnownedRate = 0, 0, 0, 0
	cfg.Seed = seed
	cfg.Start = time.Now().Add(-55 * time.Minute)
	cfg.TimeScale = 50 * 60 * cfg.Rate / float64(n)
	g := loadgen.NewGenerator(cfg)
	d := dataset{keys: make([][]byte, 0, n), values: make([][]byte, 0, n), events: make([]*schemas.Event, 0, n)}
	for len(d.values) < n {
		it := g.Next()
		if it.Malformed || it.Duplicate {
			continue
		}
		d.keys = append(d.keys, []byte(it.Event.EventID))
		d.values = append(d.values, it.Raw)
		d.events = append(d.events, it.Event)
	}
	return d
}

// withTeams rewrites d so that its events belong to teams distinct teams
// (one project each), owned through their labels: the API key is replaced
// by one no ownership rule knows, so enrich takes the team label.
func withTeams(d dataset, teams int) (dataset, error) {
	out := dataset{keys: d.keys, values: make([][]byte, len(d.values))}
	for i, ev := range d.events {
		e := *ev
		t := i % teams
		sum := sha256.Sum256([]byte(fmt.Sprint("bench-key-", t)))
		e.APIKeyID = "sha256:" + hex.EncodeToString(sum[:])
		e.Labels = map[string]string{"team": fmt.Sprintf("team-%d", t), "project": "p"}
		b, err := json.Marshal(&e)
		if err != nil {
			return dataset{}, fmt.Errorf("encoding event %s: %w", e.EventID, err)
		}
		out.values[i] = b
	}
	return out, nil
}

// enrichedFor returns count enriched events, now, spread over keys distinct
// (model, team, project) keys: what enrich would write, without pricing.
func enrichedFor(base dataset, keys, count int) (dataset, error) {
	now := time.Now().UTC()
	const models = 10
	d := dataset{keys: make([][]byte, count), values: make([][]byte, count)}
	for i := 0; i < count; i++ {
		k := i % keys
		e := schemas.Enriched{
			Event: *base.events[i%len(base.events)],
			Owner: schemas.Owner{Team: fmt.Sprintf("team-%d", (k/models)%1000), Project: fmt.Sprintf("p-%d", k/models/1000), Rule: "event_labels"},
		}
		e.EventID = fmt.Sprintf("rss-%d", i)
		e.Time = now.Add(-time.Duration(i%1000) * time.Millisecond)
		e.Model = fmt.Sprintf("model-%d", k%models)
		e.Pricing = schemas.Pricing{CatalogVersion: "bench"}
		e.CostPicos = 1_000_000
		e.CostSource = "catalog"
		e.EnrichedAt = now
		b, err := json.Marshal(&e)
		if err != nil {
			return dataset{}, err
		}
		d.keys[i], d.values[i] = []byte(e.EventID), b
	}
	return d, nil
}
