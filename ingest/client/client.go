// Package client produces usage events from Go gateways straight to Kafka,
// without going through the HTTP ingest API.
//
// Data enters through Send or TrySend: the event gets its defaults
// (event_id, schema_version, source, time), is validated, encoded as JSON
// and buffered. It leaves as a Kafka record on the raw topic
// (schemas.TopicRaw by default), keyed by event_id and written with
// acks=all by an idempotent producer. Delivery is asynchronous: Stats counts
// what was acknowledged, and OnError receives every event that could not be
// delivered.
//
// # Delivery and retries
//
// franz-go retries a record internally until it is acknowledged; with the
// default Config.DeliveryTimeout (0) it never gives up while the client is
// open, so a broker restart only delays delivery. With a DeliveryTimeout, or
// when Close fails what is still buffered, the event is handed to OnError.
// Such an event may still have been written: a produce request can reach the
// broker while its answer is lost. Resending it is safe as long as it keeps
// its event_id, because aivis deduplicates by event_id from enrich through
// ClickHouse. The event given to OnError is decoded from the exact bytes
// that were produced, so passing it to Send again unchanged is the resend.
//
// The event_id is assigned by Send before the first produce attempt and
// written into the caller's event, so a caller that retries a failed Send
// with the same *schemas.Event reuses the id as well.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxBufferedEvents = 10_000
	DefaultLinger            = 10 * time.Millisecond
	DefaultFlushTimeout      = 30 * time.Second
)

// ErrFull is returned by TrySend when MaxBufferedEvents events are waiting
// for their acknowledgement.
var ErrFull = errors.New("aivis client: buffer full: MaxBufferedEvents events await acknowledgement (the broker is slow or unreachable; retry later, use Send to wait, or raise MaxBufferedEvents)")

// ErrClosed is returned by Send, TrySend and Flush after Close.
var ErrClosed = errors.New("aivis client: closed: create a new client to send more events")

// Config configures a Client. The zero value of every field but Brokers
// selects a default.
type Config struct {
	// Brokers are the Kafka seed brokers, host:port.
	Brokers []string
	// Topic is the topic events are produced to; default schemas.TopicRaw.
	Topic string
	// Source fills in Event.Source when the caller leaves it empty;
	// default the host name.
	Source string
	// MaxBufferedEvents bounds the events sent but not yet acknowledged:
	// Send blocks and TrySend returns ErrFull at the bound. Default 10,000.
	MaxBufferedEvents int
	// Linger is how long a partition's batch waits for more events before
	// it is sent. Default 10ms, at most 1m; negative sends at once.
	Linger time.Duration
	// FlushTimeout bounds the flush that Close does when its context has no
	// earlier deadline. Default 30s.
	FlushTimeout time.Duration
	// DeliveryTimeout fails an event to OnError when it has not been
	// acknowledged this long after Send; 0 (the default) retries until
	// Close. kgo does not accept less than a second.
	DeliveryTimeout time.Duration
	// OnError receives each event that could not be delivered, with the
	// reason. It runs on the producer's callback goroutine and must not
	// block: to resend, hand the event to another goroutine that calls
	// Send, or call TrySend. Nil drops failures; Stats still counts them.
	OnError func(ev *schemas.Event, err error)
}

// Stats are the client's counters since New.
type Stats struct {
	// Sent counts events accepted by Send and TrySend.
	Sent int64
	// Acked counts events the broker acknowledged.
	Acked int64
	// Failed counts events handed to OnError.
	Failed int64
	// Buffered is the number of events sent but not yet acknowledged or
	// failed.
	Buffered int64
}

// Client produces usage events to Kafka. It is safe for concurrent use.
type Client struct {
	cl      *kgo.Client
	topic   string
	source  string
	flushTO time.Duration
	onError func(*schemas.Event, error)

	// slots holds one token per buffered event: its capacity is the
	// backpressure bound.
	slots chan struct{}

	// mu orders Close against the produce calls of Send: Close takes it
	// exclusively, so no record is handed to a closed kgo client.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{}
	// inflight counts records handed to kgo whose promise has not run;
	// Add happens only under mu.RLock while open, so Close may Wait.
	inflight sync.WaitGroup

	sent, acked, failed atomic.Int64
}

// New validates cfg and creates a Client. opts are appended to the
// client's own options (seed brokers, topic, linger, zstd→snappy→none
// compression, acks=all, idempotent writes), so they can add TLS, SASL or
// logging, or override the defaults; acks=all and idempotent writes may not
// be turned off. New does not wait for the brokers: the first produce
// connects.
func New(cfg Config, opts ...kgo.Opt) (*Client, error) {
	if cfg.Topic == "" {
		cfg.Topic = schemas.TopicRaw
	}
	if cfg.Source == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "aivis-go-client"
		}
		cfg.Source = host
	}
	if cfg.MaxBufferedEvents == 0 {
		cfg.MaxBufferedEvents = DefaultMaxBufferedEvents
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.Linger < 0 {
		cfg.Linger = 0
	}
	if cfg.FlushTimeout == 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	var errs []error
	if len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one seed broker (host:port) is required"))
	}
	if cfg.MaxBufferedEvents < 0 {
		errs = append(errs, fmt.Errorf("max_buffered_events: %d must be positive", cfg.MaxBufferedEvents))
	}
	if cfg.Linger > time.Minute {
		errs = append(errs, fmt.Errorf("linger: %v is longer than kgo allows (1m)", cfg.Linger))
	}
	if cfg.FlushTimeout < 0 {
		errs = append(errs, fmt.Errorf("flush_timeout: %v must not be negative", cfg.FlushTimeout))
	}
	if cfg.DeliveryTimeout < 0 || (cfg.DeliveryTimeout > 0 && cfg.DeliveryTimeout < time.Second) {
		errs = append(errs, fmt.Errorf("delivery_timeout: %v must be 0 (retry until Close) or at least 1s", cfg.DeliveryTimeout))
	}
	if len(cfg.Source) > schemas.MaxIDLen {
		errs = append(errs, fmt.Errorf("source: %q is longer than %d bytes", cfg.Source, schemas.MaxIDLen))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuring the aivis client: %w", err)
	}

	base := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.SnappyCompression(), kgo.NoCompression()),
		// Our slots are the bound. kgo releases its own count only after
		// the promise that frees a slot returns, so it gets headroom to
		// never block a Send that already holds a slot.
		kgo.MaxBufferedRecords(2 * cfg.MaxBufferedEvents),
	}
	if cfg.DeliveryTimeout > 0 {
		base = append(base, kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("creating the aivis Kafka client for %v: %w", cfg.Brokers, err)
	}
	if acks, _ := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); acks != kgo.AllISRAcks() {
		cl.Close()
		return nil, errors.New("creating the aivis client: RequiredAcks must stay AllISRAcks: an event acknowledged by the leader alone can be lost; remove the RequiredAcks option")
	}
	if off, _ := cl.OptValue(kgo.DisableIdempotentWrite).(bool); off {
		cl.Close()
		return nil, errors.New("creating the aivis client: idempotent writes must stay on: without them a retried batch can be written twice; remove the DisableIdempotentWrite option")
	}
	return &Client{
		cl:      cl,
		topic:   cfg.Topic,
		source:  cfg.Source,
		flushTO: cfg.FlushTimeout,
		onError: cfg.OnError,
		slots:   make(chan struct{}, cfg.MaxBufferedEvents),
		closing: make(chan struct{}),
	}, nil
}

// Send fills in ev's defaults, validates it and buffers it for delivery.
// It fills in, on ev itself: event_id (a ULID) when empty,
// schema_version, source (Config.Source) when empty and time (now) when
// zero. An invalid event is never buffered: Send returns its
// *schemas.ValidationError. When MaxBufferedEvents events await their
// acknowledgement, Send blocks until one is acknowledged or ctx is done.
// ctx bounds only that wait; once Send returns nil, delivery continues
// independently and its outcome shows in Stats and OnError. ev may be
// reused after Send returns.
func (c *Client) Send(ctx context.Context, ev *schemas.Event) error {
	rec, err := c.prepare(ev)
	if err != nil {
		return err
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for buffer space for event %s (%d events await acknowledgement; the broker is slow or unreachable): %w", ev.EventID, cap(c.slots), ctx.Err())
	case <-c.closing:
		return ErrClosed
	}
	return c.produce(rec)
}

// TrySend is Send that returns ErrFull at once instead of waiting for
// buffer space.
func (c *Client) TrySend(ev *schemas.Event) error {
	rec, err := c.prepare(ev)
	if err != nil {
		return err
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return ErrFull
	}
	return c.produce(rec)
}

// prepare applies the defaults, validates and encodes ev.
func (c *Client) prepare(ev *schemas.Event) (*kgo.Record, error) {
	if ev == nil {
		return nil, errors.New("sending a usage event: the event is nil")
	}
	if ev.EventID == "" {
		ev.EventID = ulid.Make().String()
	}
	if ev.SchemaVersion == "" {
		ev.SchemaVersion = schemas.SchemaVersion
	}
	if ev.Source == "" {
		ev.Source = c.source
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	// Straight to Kafka, so the secrets ingest would hide are hidden here.
	ev.HideSecrets()
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	value, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding usage event %s: %w", ev.EventID, err)
	}
	return &kgo.Record{Topic: c.topic, Key: []byte(ev.EventID), Value: value}, nil
}

// produce hands rec, whose slot the caller holds, to kgo.
func (c *Client) produce(rec *kgo.Record) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		<-c.slots
		return ErrClosed
	}
	c.sent.Add(1)
	c.inflight.Add(1)
	// Not the caller's context: cancelling it must not fail a record that
	// is already buffered.
	c.cl.Produce(context.Background(), rec, c.delivered)
	return nil
}

// delivered is the kgo promise of every record. kgo calls promises one at a
// time, so it must not block.
func (c *Client) delivered(rec *kgo.Record, err error) {
	defer c.inflight.Done()
	<-c.slots
	if err == nil {
		c.acked.Add(1)
		return
	}
	c.failed.Add(1)
	if c.onError == nil {
		return
	}
	ev := new(schemas.Event)
	if derr := json.Unmarshal(rec.Value, ev); derr != nil {
		// Cannot happen for bytes that prepare encoded; keep the id.
		ev = &schemas.Event{EventID: string(rec.Key)}
		err = errors.Join(err, fmt.Errorf("decoding the failed event: %w", derr))
	}
	c.onError(ev, fmt.Errorf("delivering usage event %s to topic %s (it may still have been written; resending it with the same event_id is safe): %w", ev.EventID, c.topic, err))
}

// Flush sends every buffered event at once, without waiting for Linger,
// and waits until each is acknowledged or failed to OnError, or until ctx
// is done. Events sent while Flush waits are waited for too.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return c.flush(ctx)
}

func (c *Client) flush(ctx context.Context) error {
	if err := c.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing usage events (%d still await acknowledgement; the broker is slow or unreachable, retry Flush or Close to fail them to OnError): %w", len(c.slots), err)
	}
	return nil
}

// Close stops accepting events, flushes what is buffered within ctx and
// Config.FlushTimeout, whichever ends first, and closes the Kafka client.
// Events still unacknowledged then are failed to OnError with
// kgo.ErrClientClosed; some of them may have been written. Sends blocked
// for buffer space return ErrClosed. Calls after the first return nil.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.closing)
	c.mu.Unlock()

	fctx, cancel := context.WithTimeout(ctx, c.flushTO)
	defer cancel()
	err := c.flush(fctx)
	c.cl.Close()
	// kgo fails what is left to the promises; OnError has seen every
	// failure when Close returns.
	c.inflight.Wait()
	if err != nil {
		return fmt.Errorf("closing the aivis client: %w", err)
	}
	return nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Sent:     c.sent.Load(),
		Acked:    c.acked.Load(),
		Failed:   c.failed.Load(),
		Buffered: int64(len(c.slots)),
	}
}
