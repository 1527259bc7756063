// Command example sends synthetic llm.request usage events to Kafka with
// the aivis Go client, at a fixed rate, and prints the client's counters
// when it is done:
//
//	go run ./ingest/client/example --brokers 127.0.0.1:19092 --n 10000 --rate 2000
//
// Events that could not be delivered are resent with their event_id
// unchanged; aivis counts each event_id once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aivis-dev/aivis/ingest/client"
	"github.com/aivis-dev/aivis/schemas"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:19092", "Kafka seed brokers, comma-separated host:port")
	n := flag.Int("n", 1000, "number of events to send")
	rate := flag.Float64("rate", 500, "events per second; 0 sends as fast as the buffer allows")
	topic := flag.String("topic", schemas.TopicRaw, "topic to produce to")
	flag.Parse()
	if *n < 0 || *rate < 0 {
		return errors.New("--n and --rate must not be negative")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// OnError must not block: it queues the event for the resender, or
	// counts it as dropped when the queue is full.
	retry := make(chan *schemas.Event, 1024)
	var dropped atomic.Int64
	var firstErr sync.Once
	c, err := client.New(client.Config{
		Brokers:         strings.Split(*brokers, ","),
		Topic:           *topic,
		Source:          "aivis-client-example",
		DeliveryTimeout: 10 * time.Second,
		OnError: func(ev *schemas.Event, err error) {
			firstErr.Do(func() { fmt.Fprintln(os.Stderr, "first delivery error (failed events are resent):", err) })
			select {
			case retry <- ev:
			default:
				dropped.Add(1)
			}
		},
	})
	if err != nil {
		return err
	}
	resent := make(chan struct{})
	go func() {
		defer close(resent)
		for ev := range retry {
			// The same event, event_id included: aivis counts it once
			// even if the failed attempt was written after all.
			if err := c.Send(ctx, ev); err != nil {
				dropped.Add(1)
			}
		}
	}()

	models := []struct{ provider, model string }{
		{"openai", "gpt-4o-mini"}, {"openai", "gpt-4o"}, {"anthropic", "claude-sonnet-4"},
	}
	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) / *rate)
	}
	start := time.Now()
	sent := 0
	for ; sent < *n && ctx.Err() == nil; sent++ {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(sent) * interval)); wait > 0 {
				time.Sleep(wait)
			}
		}
		m := models[rand.IntN(len(models))]
		ev := &schemas.Event{
			Kind:      schemas.KindLLMRequest,
			Provider:  m.provider,
			Model:     m.model,
			Operation: "chat",
			Status:    schemas.StatusOK,
			LatencyMs: schemas.Int64(int64(50 + rand.IntN(2000))),
			Labels:    map[string]string{"team": "demo", "project": "client-example"},
			Usage: &schemas.Usage{
				InputTokens:  schemas.Int64(int64(100 + rand.IntN(4000))),
				OutputTokens: schemas.Int64(int64(10 + rand.IntN(800))),
			},
		}
		if err := c.Send(ctx, ev); err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("sending event %d: %w", sent, err)
		}
	}

	// Wait for the resends too: every event is acknowledged or the
	// deadline passes.
	done, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for c.Stats().Acked < int64(sent) && done.Err() == nil && ctx.Err() == nil {
		_ = c.Flush(done)
		time.Sleep(50 * time.Millisecond)
	}
	err = c.Close(done)
	close(retry) // OnError is not called after Close returns
	<-resent
	s := c.Stats()
	fmt.Printf("sent %d events in %v: %d acknowledged, %d deliveries failed, %d events dropped\n",
		sent, time.Since(start).Round(time.Millisecond), s.Acked, s.Failed, dropped.Load())
	if err != nil {
		return err
	}
	if s.Acked < int64(sent) {
		return fmt.Errorf("%d of %d events were not acknowledged (is the broker at %s reachable?)", int64(sent)-s.Acked, sent, *brokers)
	}
	return nil
}
