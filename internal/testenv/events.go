package testenv

import (
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// EventTime is the time of the events LLMEvent builds.
var EventTime = time.Date(2025, 9, 30, 12, 0, 0, 0, time.UTC)

// Usage returns token counts with cache reads, cache writes and reasoning
// reported as subsets of input and output.
func Usage(in, read, write, out, reason int64) *schemas.Usage {
	return &schemas.Usage{
		InputTokens:           schemas.Int64(in),
		CacheReadInputTokens:  schemas.Int64(read),
		CacheWriteInputTokens: schemas.Int64(write),
		OutputTokens:          schemas.Int64(out),
		ReasoningOutputTokens: schemas.Int64(reason),
	}
}

// LLMEvent returns a valid llm.request event at EventTime, for the tests
// of pricing and of the stages that price or attribute events.
func LLMEvent(provider, model string, u *schemas.Usage) *schemas.Event {
	return &schemas.Event{
		SchemaVersion: schemas.SchemaVersion,
		EventID:       "01JTEST0000000000000000000",
		Time:          EventTime,
		Kind:          schemas.KindLLMRequest,
		Source:        "test",
		Provider:      provider,
		Model:         model,
		Status:        schemas.StatusOK,
		Usage:         u,
	}
}
