package main

import (
	"context"

	"github.com/aivis-dev/aivis/internal/pipeline"
)

// runServing scrapes the inference servers of serving.targets_path and
// produces their token counts to the raw topic, or prints them as JSON
// lines when no brokers are configured.
func runServing(ctx context.Context, e *env) error {
	return runStages(ctx, e, pipeline.Options{Stages: []pipeline.Stage{pipeline.Serving}, Out: e.out})
}
