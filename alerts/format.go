package alerts

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// Body encodes a for the webhook's type.
func Body(h Webhook, a schemas.Alert) ([]byte, error) {
	var v any
	switch h.Type {
	case TypeSlack:
		v = slackMessage(a)
	case TypePagerDuty:
		v = pagerDutyEvent(h.RoutingKey, a)
	default:
		v = a
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding alert %s for %s: %w", a.AlertID, h.Type, err)
	}
	return b, nil
}

// Summary is a one-line, human-readable account of a, e.g.
// "[FIRING] cost anomaly: team search, model gpt-4o spent $52.10 against a baseline of $10.40 (z 7.9)".
func Summary(a schemas.Alert) string {
	st := strings.ToUpper(status(a))
	switch a.Kind {
	case schemas.AlertBudget:
		s := fmt.Sprintf("[%s] budget %s: %s threshold, spent %s of %s (%s)", st, a.BudgetID, a.Threshold, usd(a.CostUSD), usd(a.AmountUSD), a.Period)
		if a.Threshold == "forecast" && a.ForecastUSD != "" {
			s += ", forecast " + usd(a.ForecastUSD)
		}
		if a.ExhaustsAt != nil {
			s += ", runs out " + a.ExhaustsAt.UTC().Format("2006-01-02 15:04 MST")
		}
		return s
	case schemas.AlertGovernance:
		return fmt.Sprintf("[%s] %s signal %s: %s", st, a.Category, a.Signal, a.Detail)
	case schemas.AlertSavings:
		return fmt.Sprintf("[SAVINGS] %s: about %s a month (%s over %s – %s)", a.Scope, usd(a.AmountUSD), usd(a.CostUSD),
			a.WindowStart.UTC().Format("2006-01-02"), a.WindowEnd.UTC().Format("2006-01-02"))
	default:
		return fmt.Sprintf("[%s] cost anomaly: team %s, model %s spent %s against a baseline of %s (z %.1f)",
			st, orNone(a.Team), orNone(a.Model), usd(a.CostUSD), usd(a.BaselineUSD), a.ZScore)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// usd formats a decimal USD string to cents for people; the exact value
// stays in the alert itself.
func usd(s string) string {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return s
	}
	if d.Abs().LessThan(decimal.NewFromInt(1)) && !d.IsZero() {
		return "$" + d.Round(4).String()
	}
	return "$" + d.StringFixed(2)
}

// maxContributors bounds the contributors a chat message lists.
const maxContributors = 5

// slackMessage is a Slack incoming-webhook payload: text is the fallback
// line notifications show; the blocks give baseline, actual and
// contributors.
func slackMessage(a schemas.Alert) map[string]any {
	text := Summary(a)
	fields := []map[string]any{
		mrkdwn("*Actual*\n" + usd(a.CostUSD)),
	}
	switch a.Kind {
	case schemas.AlertBudget:
		fields = append(fields, mrkdwn("*Budget*\n"+usd(a.AmountUSD)))
	case schemas.AlertGovernance:
		fields = append(fields, mrkdwn("*Subject*\n"+orNone(a.Subject)))
	case schemas.AlertSavings:
		fields = append(fields, mrkdwn("*Monthly saving*\n"+usd(a.AmountUSD)))
	default:
		fields = append(fields, mrkdwn("*Baseline*\n"+usd(a.BaselineUSD)))
	}
	fields = append(fields,
		mrkdwn("*Window*\n"+a.WindowStart.UTC().Format("2006-01-02 15:04")+" – "+a.WindowEnd.UTC().Format("15:04 MST")),
		mrkdwn("*Incident*\n"+orNone(a.IncidentID)),
	)
	blocks := []map[string]any{
		{"type": "section", "text": mrkdwn(text)},
		{"type": "section", "fields": fields},
	}
	if len(a.Contributors) > 0 {
		var b strings.Builder
		b.WriteString("*Top contributors*")
		for i, c := range a.Contributors {
			if i == maxContributors {
				fmt.Fprintf(&b, "\n…and %d more", len(a.Contributors)-i)
				break
			}
			fmt.Fprintf(&b, "\n• %s `%s`: %s (baseline %s)", c.Dimension, c.Key, usd(c.CostUSD), usd(c.BaselineUSD))
		}
		blocks = append(blocks, map[string]any{"type": "section", "text": mrkdwn(b.String())})
	}
	return map[string]any{"text": text, "blocks": blocks}
}

func mrkdwn(s string) map[string]any { return map[string]any{"type": "mrkdwn", "text": s} }

// pagerDutyEvent is an Events API v2 event: one PagerDuty incident per
// aivis incident (dedup_key), triggered while firing or updated and
// resolved with it.
func pagerDutyEvent(routingKey string, a schemas.Alert) map[string]any {
	dedup := a.IncidentID
	if dedup == "" {
		dedup = a.AlertID
	}
	ev := map[string]any{"routing_key": routingKey, "dedup_key": dedup}
	if a.Status == schemas.AlertResolved {
		ev["event_action"] = "resolve"
		return ev
	}
	ev["event_action"] = "trigger"
	summary := Summary(a)
	if len(summary) > 1024 {
		summary = summary[:1024]
	}
	ev["payload"] = map[string]any{
		"summary":        summary,
		"severity":       severity(a),
		"source":         "aivis",
		"timestamp":      a.DetectedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
		"component":      orNone(a.Model),
		"group":          orNone(a.Team),
		"class":          a.Kind,
		"custom_details": a,
	}
	return ev
}

// severity maps an alert to PagerDuty's critical, error or warning.
func severity(a schemas.Alert) string {
	switch {
	case a.Kind == schemas.AlertBudget && a.Threshold == "hard":
		return "critical"
	case a.Kind == schemas.AlertBudget:
		return "warning"
	case a.Kind == schemas.AlertGovernance && a.Category == schemas.CategorySecurity:
		return "error"
	case a.Kind == schemas.AlertGovernance:
		return "warning"
	case a.Kind == schemas.AlertSavings:
		return "info"
	default:
		return "error"
	}
}
