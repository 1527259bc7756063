package pipeline

import (
	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/internal/actor"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/savings"
	"github.com/aivis-dev/aivis/schemas"
)

// buildSavings adds the daily savings recommender to the aggregate role:
// it reads the usage aggregate writes, prices it with the enrich catalog
// and publishes savings alerts to the alerts topic.
func (p *Process) buildSavings(d bus.Dialer) error {
	cat, err := p.cfg.Enrich.LoadCatalog()
	if err != nil {
		return err
	}
	cl, err := d.Producer("savings")
	if err != nil {
		return err
	}
	p.clients = append(p.clients, cl)
	alerts, err := p.alertSink(aggregate.KafkaAlerts{Client: cl, Topic: schemas.TopicAlerts})
	if err != nil {
		return err
	}
	r, err := savings.NewRecommender(p.cfg.Savings, cat, p.Store, alerts, p.Registry, p.log.With("stage", "savings"))
	if err != nil {
		return err
	}
	p.Savings = r
	p.Ready.Add("savings", r.Ready)
	p.group.Add("savings", r, actor.Options{})
	return nil
}
