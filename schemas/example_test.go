package schemas_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// A team's service subscribing to priced usage: every record of
// aivis.usage.enriched.v1 is one event with its owner and exact cost. The
// topic is at least once, keyed by event_id: keep the ids you have seen
// (or write them to a table keyed by event_id) to count each event once.
func Example_subscribe() {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers("127.0.0.1:9092"),
		kgo.ConsumerGroup("finance-chargeback"),
		kgo.ConsumeTopics(schemas.TopicEnriched),
	)
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	for {
		fetches := cl.PollFetches(context.Background())
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachRecord(func(r *kgo.Record) {
			// JSON, unless enrich.output_format is protobuf: then the
			// record's content-type header says so.
			decode := schemas.DecodeEnriched
			for _, h := range r.Headers {
				if strings.EqualFold(h.Key, schemas.HeaderContentType) && schemas.IsProtobuf(h.Value) {
					decode = schemas.DecodeEnrichedProto
				}
			}
			ev, err := decode(r.Value)
			if err != nil || seen[ev.EventID] {
				return
			}
			seen[ev.EventID] = true
			// ModelID: one name per model (gpt-4o for gpt-4o-2024-08-06).
			fmt.Printf("%s %s/%s spent $%s on %s\n", ev.Time.Format("15:04:05"), ev.Owner.Team, ev.Owner.Project,
				fmt.Sprintf("%d.%012d", ev.CostPicos/1e12, ev.CostPicos%1e12), ev.ModelID())
		})
	}
}
