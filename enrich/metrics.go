package enrich

import (
	"errors"

	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	eventsTotal = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_enrich_events_total",
		Help: "Raw records handled by enrich, by result (enriched or deadlettered), counted once acknowledged by Kafka.",
	}, []string{"result"})
	unpricedTotal = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_enrich_unpriced_total",
		Help: "Enriched events without a catalog price, by provider (catalog providers only; others are \"other\"). Add the model to the pricing catalog.",
	}, []string{"provider"})
	unownedTotal = promauto.With(obs.Registry).NewCounter(prometheus.CounterOpts{
		Name: "aivis_enrich_unowned_total",
		Help: "Enriched events that no ownership rule matched (team \"unattributed\"). Add an api_keys or labels rule.",
	})
	reloadErrorsTotal = promauto.With(obs.Registry).NewCounter(prometheus.CounterOpts{
		Name: "aivis_enrich_reload_errors_total",
		Help: "Failed reloads of the pricing catalog or ownership rules; the previous rules stay in use. The log says which file and why.",
	})
	reloadsTotal = promauto.With(obs.Registry).NewCounter(prometheus.CounterOpts{
		Name: "aivis_enrich_reloads_total",
		Help: "Successful reloads of the pricing catalog and ownership rules.",
	})
	// deadLetterTotal is shared by every stage that dead-letters.
	deadLetterTotal = sharedCounterVec(prometheus.CounterOpts{
		Name: "aivis_deadletter_total",
		Help: "Records sent to aivis.deadletter.v1, by stage and reason.",
	}, []string{"stage", "reason"})
)

// sharedCounterVec registers a counter that other stages in the same
// process may register too, returning the one already registered.
func sharedCounterVec(opts prometheus.CounterOpts, labels []string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(opts, labels)
	if err := obs.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		// Only a programming error (conflicting definitions) gets here.
		panic(err)
	}
	return c
}
