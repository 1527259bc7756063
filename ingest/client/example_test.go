package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aivis-dev/aivis/ingest/client"
	"github.com/aivis-dev/aivis/schemas"
)

// A gateway creates one client at start-up, sends an event per request and
// closes the client on shutdown. Failed deliveries are resent unchanged
// from a goroutine, because OnError must not block.
func ExampleClient() {
	retry := make(chan *schemas.Event, 1024)
	c, err := client.New(client.Config{
		Brokers: []string{"127.0.0.1:19092"},
		Source:  "gateway-eu-1",
		OnError: func(ev *schemas.Event, err error) {
			select {
			case retry <- ev:
			default:
				log.Printf("dropping usage event %s: %v", ev.EventID, err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for ev := range retry {
			_ = c.Send(context.Background(), ev) // same event_id: counted once
		}
	}()

	ev := &schemas.Event{
		Kind:      schemas.KindLLMRequest,
		Provider:  "openai",
		Model:     "gpt-4o-mini",
		Status:    schemas.StatusOK,
		LatencyMs: schemas.Int64(840),
		Usage:     &schemas.Usage{InputTokens: schemas.Int64(1200), OutputTokens: schemas.Int64(310)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Send(ctx, ev); err != nil {
		log.Print(err) // invalid event, or the buffer stayed full for a second
	}
	fmt.Println("assigned a ULID event_id:", len(ev.EventID) == 26)

	if err := c.Close(context.Background()); err != nil {
		log.Print(err)
	}
	close(retry)
}
