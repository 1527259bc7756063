package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicPlan says which topics a process needs and how aivis creates the
// missing ones.
type TopicPlan struct {
	Topics      []string
	Partitions  int32
	Replication int16
	// Create allows creating missing topics; without it they are only
	// reported.
	Create bool
}

// TopicState is what Ensure found.
type TopicState struct {
	// Created are the topics this call created.
	Created []string
	// Partitions is the partition count of every existing topic.
	Partitions map[string]int
	// Missing are the topics that neither existed nor could be created.
	Missing []string
	// Warnings are problems that do not stop the stage (fewer partitions
	// than configured).
	Warnings []string
}

// MissingTopicsError names every topic that is missing and says how to
// create it.
type MissingTopicsError struct {
	Topics  []string
	Plan    TopicPlan
	Brokers []string
	// Cause is why aivis did not create them (no create rights, creation
	// disabled).
	Cause error
}

func (e *MissingTopicsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Kafka topic(s) %s do not exist", strings.Join(e.Topics, ", "))
	if e.Cause != nil {
		fmt.Fprintf(&b, " and aivis could not create them (%v)", e.Cause)
	}
	b.WriteString("; create them, e.g.:")
	for _, t := range e.Topics {
		fmt.Fprintf(&b, "\n    kafka-topics.sh --bootstrap-server %s --create --topic %s --partitions %d --replication-factor %d",
			strings.Join(e.Brokers, ","), t, e.Plan.Partitions, e.Plan.Replication)
	}
	b.WriteString("\n  or run `aivis migrate` with create rights, or grant this principal CREATE on the topics")
	return b.String()
}

// Ensure makes sure every topic of plan exists: it reads the topics'
// metadata, creates the missing ones when plan.Create allows, and reports
// existing topics with fewer partitions than plan.Partitions (which caps how
// many consumers of a group do any work). Missing topics that could not be
// created make a *MissingTopicsError; other errors (broker unreachable) are
// returned as they are.
func Ensure(ctx context.Context, adm *kadm.Client, brokers []string, plan TopicPlan) (TopicState, error) {
	st := TopicState{Partitions: map[string]int{}}
	details, err := adm.ListTopics(ctx, plan.Topics...)
	if err != nil {
		return st, fmt.Errorf("reading the metadata of topics %v from %v: %w", plan.Topics, brokers, err)
	}
	var missing []string
	for _, t := range plan.Topics {
		d, ok := details[t]
		switch {
		case ok && d.Err == nil:
			st.Partitions[t] = len(d.Partitions)
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
		default:
			return st, fmt.Errorf("reading the metadata of topic %s: %w", t, d.Err)
		}
	}
	var cause error
	if len(missing) > 0 && !plan.Create {
		cause = errors.New("topic creation is off for this process")
	}
	if len(missing) > 0 && plan.Create {
		resp, err := adm.CreateTopics(ctx, plan.Partitions, plan.Replication, nil, missing...)
		if err != nil {
			return st, fmt.Errorf("creating topics %v: %w", missing, err)
		}
		missing = missing[:0]
		var raced []string
		for _, r := range resp.Sorted() {
			switch {
			case r.Err == nil:
				st.Created = append(st.Created, r.Topic)
				st.Partitions[r.Topic] = int(r.NumPartitions)
				if r.NumPartitions <= 0 {
					st.Partitions[r.Topic] = int(plan.Partitions)
				}
			case errors.Is(r.Err, kerr.TopicAlreadyExists):
				// Created meanwhile by another process, or created just
				// before and not yet in the metadata this broker served:
				// its partition count is read below, not assumed.
				raced = append(raced, r.Topic)
			default:
				missing = append(missing, r.Topic)
				cause = errors.Join(cause, fmt.Errorf("%s: %w", r.Topic, r.Err))
			}
		}
		if len(raced) > 0 {
			if err := readPartitions(ctx, adm, raced, st.Partitions); err != nil {
				return st, err
			}
		}
	}
	for _, t := range plan.Topics {
		if n, ok := st.Partitions[t]; ok && n < int(plan.Partitions) {
			st.Warnings = append(st.Warnings, fmt.Sprintf(
				"topic %s has %d partitions, fewer than kafka.partitions=%d: at most %d consumers of a group do any work; add partitions with kafka-topics.sh --alter --topic %s --partitions %d",
				t, n, plan.Partitions, n, t, plan.Partitions))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		st.Missing = missing
		return st, &MissingTopicsError{Topics: missing, Plan: plan, Brokers: brokers, Cause: cause}
	}
	return st, nil
}

// readPartitions records the partition count of topics that exist but were
// missing from an earlier metadata answer; it asks again until every one
// shows up, as metadata reaches the brokers a moment after a topic is
// created.
func readPartitions(ctx context.Context, adm *kadm.Client, topics []string, into map[string]int) error {
	// About half a minute at one try a second, for a caller without a
	// deadline (aivis migrate).
	const maxMetadataWaits = 30
	// The client caches metadata for a few seconds; asking for the
	// authorized operations sends every request to the broker.
	ctx = kadm.WithAuthorizedOps(ctx)
	for attempt := 0; ; attempt++ {
		details, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			return fmt.Errorf("reading the metadata of topics %v: %w", topics, err)
		}
		var pending []string
		for _, t := range topics {
			d, ok := details[t]
			switch {
			case ok && d.Err == nil && len(d.Partitions) > 0:
				into[t] = len(d.Partitions)
			case !ok || d.Err == nil || errors.Is(d.Err, kerr.UnknownTopicOrPartition) || errors.Is(d.Err, kerr.LeaderNotAvailable):
				pending = append(pending, t)
			default:
				return fmt.Errorf("reading the metadata of topic %s: %w", t, d.Err)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		topics = pending
		if attempt == maxMetadataWaits || !Sleep(ctx, Backoff(attempt, time.Second)) {
			return fmt.Errorf("reading the metadata of topics %v, which the broker says exist: not known to it after %d tries (%v)", topics, attempt+1, ctx.Err())
		}
	}
}

// TopicGuard keeps checking that a process's topics exist, creating them
// when it may, and answers readiness: not ready while a topic is missing.
// Run it as an actor beside the stages that use the topics.
type TopicGuard struct {
	dialer Dialer
	plan   TopicPlan
	log    *slog.Logger
	// Interval between checks while a topic is missing.
	Interval time.Duration

	mu      sync.Mutex
	err     error
	checked bool
	ready   chan struct{}
}

// NewTopicGuard returns a guard for plan; it is not ready until its first
// successful check.
func NewTopicGuard(d Dialer, plan TopicPlan, log *slog.Logger) *TopicGuard {
	return &TopicGuard{dialer: d, plan: plan, log: log, Interval: 5 * time.Second,
		err: errors.New("topics not checked yet"), ready: make(chan struct{})}
}

// Check runs one check and returns what it found; the error is what
// readiness reports.
func (g *TopicGuard) Check(ctx context.Context) (TopicState, error) {
	adm, err := g.dialer.Admin()
	if err != nil {
		return TopicState{}, err
	}
	defer adm.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := Ensure(cctx, adm, g.dialer.Brokers, g.plan)
	g.mu.Lock()
	first := !g.checked && err == nil
	g.err = err
	if err == nil {
		g.checked = true
	}
	g.mu.Unlock()
	if first {
		close(g.ready)
	}
	return st, err
}

// Ready fails while a topic is missing or the brokers cannot be asked.
func (g *TopicGuard) Ready() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Present is closed once every topic was seen to exist.
func (g *TopicGuard) Present() <-chan struct{} { return g.ready }

// Run checks until every topic exists, logging what it created and every
// warning once, then re-checks every minute so that a deleted topic turns
// readiness off. It returns nil when ctx is done.
func (g *TopicGuard) Run(ctx context.Context) error {
	var lastErr string
	warned := false
	for attempt := 0; ; attempt++ {
		st, err := g.Check(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if len(st.Created) > 0 {
			g.log.Info("created Kafka topics", "topics", st.Created, "partitions", g.plan.Partitions, "replication", g.plan.Replication)
		}
		if !warned && err == nil {
			warned = true
			for _, w := range st.Warnings {
				g.log.Warn(w)
			}
		}
		wait := time.Minute
		if err != nil {
			if err.Error() != lastErr {
				g.log.Error("Kafka topics are not ready; the stage waits and retries", "err", err)
				lastErr = err.Error()
			}
			wait = min(Backoff(attempt, g.Interval), g.Interval)
		} else {
			lastErr = ""
			attempt = 0
		}
		if !Sleep(ctx, wait) {
			return nil
		}
	}
}

// EnsureTopics creates every aivis topic that is missing on brokers, with
// the given partitions and replication.
func EnsureTopics(ctx context.Context, brokers []string, partitions int32, replication int16) error {
	d := Dialer{Brokers: brokers, ClientID: "aivis"}
	adm, err := d.Admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	_, err = Ensure(ctx, adm, brokers, TopicPlan{Topics: Topics, Partitions: partitions, Replication: replication, Create: true})
	return err
}
