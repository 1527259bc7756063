package pipeline

import (
	"context"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/internal/actor"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/schemas"
)

// buildBudget adds the budget evaluator to the aggregate role: it reads the
// windows aggregate writes and publishes to the alerts topic the anomaly
// scorer uses.
func (p *Process) buildBudget(d bus.Dialer) error {
	cl, err := d.Producer("budget")
	if err != nil {
		return err
	}
	p.clients = append(p.clients, cl)
	alerts, err := p.alertSink(aggregate.KafkaAlerts{Client: cl, Topic: schemas.TopicAlerts})
	if err != nil {
		return err
	}
	ev, err := budget.NewEvaluator(p.cfg.Budget, p.Store, alerts, p.Registry, p.log.With("stage", "budget"))
	if err != nil {
		return err
	}
	p.Budget = ev
	opts := actor.Options{}
	if p.opts.Drain {
		opts.Settle = func(ctx context.Context) error {
			_, err := ev.EvaluateOnce(ctx)
			return err
		}
	}
	p.Ready.Add("budget", ev.Ready)
	p.group.Add("budget", ev, opts)
	return nil
}

// buildGovernance adds the governance evaluator to the aggregate role: it
// reads the events aggregate writes and the auth-failure counts ingest
// sends, and publishes to the alerts topic.
func (p *Process) buildGovernance(d bus.Dialer) error {
	cl, err := d.Producer("governance")
	if err != nil {
		return err
	}
	p.clients = append(p.clients, cl)
	sink, err := p.alertSink(aggregate.KafkaAlerts{Client: cl, Topic: schemas.TopicAlerts})
	if err != nil {
		return err
	}
	cons, err := d.Consumer("governance", governance.ConsumerGroup, schemas.TopicSecurity)
	if err != nil {
		return err
	}
	p.clients = append(p.clients, cons)
	log := p.log.With("stage", "governance")
	ev, err := governance.NewEvaluator(p.cfg.Governance, p.Store, sink, &governance.KafkaFeed{Client: cons, Log: log}, p.Registry, log)
	if err != nil {
		return err
	}
	p.Governance = ev
	opts := actor.Options{}
	if p.opts.Drain {
		opts.Settle = func(ctx context.Context) error {
			_, err := ev.EvaluateOnce(ctx)
			return err
		}
	}
	p.Ready.Add("governance", ev.Ready)
	p.group.Add("governance", ev, opts)
	return nil
}
