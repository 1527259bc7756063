package aggregate

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// TestScorerWindowCostsBeyondInt64: window totals past int64 pico-USD
// (about 9.2 million USD) score as the amounts they are, and the alert
// states the exact cost.
func TestScorerWindowCostsBeyondInt64(t *testing.T) {
	cfg := DefaultAnomalyConfig()
	cfg.SettleWindows = 0
	store := &memScores{scores: map[string]schemas.Score{}}
	usd20M := schemas.PicosOf(math.MaxInt64).Add(math.MaxInt64).Add(1_553_255_926_290_448_386) // 20,000,000 USD
	for i := 0; i < 20; i++ {
		cost := usd20M.Add(int64(i%3) * 1_000_000_000_000_000) // 20M USD + up to 2,000 USD
		if i == 15 {
			cost = cost.Plus(usd20M).Plus(usd20M) // 60M USD
		}
		store.costs = append(store.costs, schemas.SeriesCost{WindowStart: t0.Add(time.Duration(i) * time.Minute), Team: "t", Model: "m", CostPicos: cost})
	}
	s := NewScorer(cfg, time.Minute, store, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, sc := range store.scores {
		i := int(sc.WindowStart.Sub(t0) / time.Minute)
		if sc.Anomaly != (i == 15) {
			t.Errorf("window %d: anomaly=%v z=%.1f baseline %.0f USD", i, sc.Anomaly, sc.Z, sc.BaselinePicos/1e12)
		}
		if i == 15 {
			if a := alertFor(sc, time.Minute, t0); a.CostUSD != "60000000" {
				t.Errorf("alert cost_usd = %s, want 60000000", a.CostUSD)
			}
		}
		if i > 0 && (sc.BaselinePicos < 1.9e19 || sc.BaselinePicos > 2.1e19) {
			t.Errorf("window %d: baseline %.0f USD, want about 20 million", i, sc.BaselinePicos/1e12)
		}
	}
}
