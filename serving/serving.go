// Package serving turns the token counters of self-hosted inference servers
// (vLLM, Hugging Face TGI, SGLang, NVIDIA Triton with TensorRT-LLM) into
// usage events, so that self-hosted tokens sit beside API tokens and can be
// divided into the GPU cost of the same deployment.
//
// Data enters as Prometheus text pages scraped from each target's /metrics
// every serving.interval. Parse reads a page into cumulative counters per
// model; a Tracker (the pure core, no network) turns two readings of a
// target into deltas, treating a counter that went down as a restarted one;
// the Scraper (the stage) drives both and hands one llm.request event per
// (deployment, model, interval) to its Emit function, which produces to the
// raw topic or writes JSON lines. docs/serving.md is the operator's guide.
package serving

import (
	"errors"
	"fmt"
	"time"
)

// Kind names the inference server a target runs; it decides which metric
// names are read.
type Kind string

// The servers Parse understands.
const (
	VLLM   Kind = "vllm"
	TGI    Kind = "tgi"
	SGLang Kind = "sglang"
	Triton Kind = "triton"
)

// Kinds lists every Kind, in the order docs/serving.md describes them.
var Kinds = []Kind{VLLM, TGI, SGLang, Triton}

// Operation marks the events this package emits: each one sums an
// interval of a deployment's traffic, not one request.
const Operation = "serving.interval"

// Source is the events' source field.
const Source = "aivis-serving"

// Config is the serving.* section of the aivis configuration. The targets
// are a list, so they live in their own file (TargetsPath).
type Config struct {
	TargetsPath string        `koanf:"targets_path" help:"YAML file listing the inference servers to scrape, see docs/serving.md (empty: aivis serving refuses to start)"`
	Interval    time.Duration `koanf:"interval" help:"how often every target's /metrics is scraped; each event covers one interval, aligned to multiples of it"`
	Timeout     time.Duration `koanf:"timeout" help:"how long one scrape may take before the target counts as down for that interval"`
	Provider    string        `koanf:"provider" help:"provider field of the emitted events (price it in the catalog, or leave it unpriced and join GPU cost by deployment)"`
	MaxPageMiB  int64         `koanf:"max_page_mib" help:"largest /metrics page read from a target, in MiB; a larger one is an error for that scrape"`
}

// DefaultConfig scrapes every 30 s with a 10 s timeout.
func DefaultConfig() Config {
	return Config{Interval: 30 * time.Second, Timeout: 10 * time.Second, Provider: "self-hosted", MaxPageMiB: 16}
}

// Validate reports every problem at once, with its key path; a configured
// targets file is loaded, so that `aivis config validate` catches a bad
// target.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < time.Second {
		errs = append(errs, fmt.Errorf("serving.interval: %s must be at least 1s", c.Interval))
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		errs = append(errs, fmt.Errorf("serving.timeout: %s must be positive and at most serving.interval %s", c.Timeout, c.Interval))
	}
	if c.Provider == "" {
		errs = append(errs, errors.New("serving.provider: must be set (e.g. self-hosted)"))
	} else if len(c.Provider) > 64 {
		errs = append(errs, fmt.Errorf("serving.provider: %q is longer than 64 bytes", c.Provider))
	}
	if c.MaxPageMiB < 1 || c.MaxPageMiB > 1024 {
		errs = append(errs, fmt.Errorf("serving.max_page_mib: %d must be between 1 and 1024", c.MaxPageMiB))
	}
	if c.TargetsPath != "" {
		if _, err := LoadTargets(c.TargetsPath); err != nil {
			errs = append(errs, fmt.Errorf("serving.targets_path: %w", err))
		}
	}
	return errors.Join(errs...)
}
