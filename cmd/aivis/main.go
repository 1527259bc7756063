// Command aivis runs the aivis pipeline stages and their tools. Every
// command loads configuration the same way (defaults → YAML → AIVIS_ env →
// flags), validates it, builds its stages and runs them until SIGINT or
// SIGTERM; a second signal exits at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/config"
)

type command struct {
	summary string
	// ingest marks commands that serve the ingest API, so its section is
	// validated for them only.
	ingest bool
	flags  func(fs *pflag.FlagSet)
	run    func(ctx context.Context, env *env) error
}

// env is what every command receives: its validated config, flags, logger
// and output.
type env struct {
	cfg config.Config
	fs  *pflag.FlagSet
	log *slog.Logger
	out io.Writer
	// err receives messages that must not mix with data on out.
	err  io.Writer
	args []string
	// token is the producer token aivis dev created (empty otherwise).
	token string
}

var commands = map[string]command{
	"ingest":                 {"serve POST /v1/events and produce to aivis.usage.raw.v1", true, nil, runIngest},
	"enrich":                 {"price and attribute raw events into aivis.usage.enriched.v1", false, nil, runEnrich},
	"aggregate":              {"aggregate enriched events into ClickHouse windows (one replica of the group)", false, nil, runAggregate},
	"score":                  {"score cost anomalies from ClickHouse and deliver the alerts (topic and webhooks); run one, with aggregate.score_anomalies false on the aggregators", false, nil, runScore},
	"gpuprobe":               {"sample NVIDIA GPUs with NVML and produce gpu.usage events", false, gpuprobeFlags, runGPUProbe},
	"serving":                {"scrape vLLM, TGI, SGLang and Triton /metrics and produce their token counts as llm.request events", false, nil, runServing},
	"migrate":                {"apply the ClickHouse migrations and create the Kafka topics (idempotent)", false, migrateFlags, runMigrate},
	"dev":                    {"run every stage in one process (embedded Kafka when no brokers are configured)", true, devFlags, runDev},
	"loadgen":                {"send synthetic usage traffic to an ingest endpoint or Kafka", false, loadgenFlags, runLoadgen},
	"report":                 {"print cost tables from ClickHouse", false, reportFlags, runReport},
	"export focus":           {"write the cost of a range as a FOCUS 1.2 dataset (CSV or Parquet) for FinOps tools", false, exportFocusFlags, runExportFocus},
	"serve":                  {"serve the web view (charts of cost, budgets, anomalies, GPU cost) and the JSON read API from ClickHouse", false, serveFlags, runServe},
	"report savings":         {"print savings recommendations priced from the usage in ClickHouse (caching, batch tiers, cheaper models, provisioned throughput, GPUs)", false, savingsReportFlags, runSavingsReport},
	"report budgets":         {"print each budget's spend, forecast, exhaustion date and state from budget_status", false, budgetReportFlags, runBudgetReport},
	"capacity plan":          {"size partitions, stage replicas, ClickHouse shards and disk, Kafka disk and dedup memory for an event rate and retention, from measured figures (docs/capacity.md)", false, capacityPlanFlags, runCapacityPlan},
	"capacity measure":       {"load a sample through the pipeline into ClickHouse and measure bytes per stored event, window row and Kafka record (docs/capacity.md)", false, capacityMeasureFlags, runCapacityMeasure},
	"catalog import-litellm": {"convert LiteLLM's model_prices_and_context_window.json into an aivis catalog", false, catalogImportFlags, runCatalogImport},
	"catalog diff":           {"list prices that differ between the catalog and LiteLLM, genai-prices or another catalog", false, catalogDiffFlags, runCatalogDiff},
	"catalog check":          {"check that the catalog loads, warn about prices not re-read recently and list models of recent traffic it does not price", false, catalogCheckFlags, runCatalogCheck},
	"rerate":                 {"recompute past costs under a catalog and correct the windows", false, rerateFlags, runRerate},
	"reconcile":              {"compare provider bills (OpenAI, Anthropic, AWS CUR, GCP billing) with aivis cost per day and model", false, reconcileFlags, runReconcile},
	"verify":                 {"check events against windows, and every raw-topic event against ClickHouse and the dead letters", false, verifyFlags, runVerify},
	"config validate":        {"load and validate the configuration, reporting every problem", true, printFlags, runConfigValidate},
	"token":                  {"create a producer token and print it with the hash for ingest.producers", false, nil, runToken},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	name, rest := pickCommand(args)
	cmd, ok := commands[name]
	if !ok {
		switch name {
		case "help", "-h", "--help":
			usage(stdout)
			return 0
		case "":
			usage(stderr)
			return 0
		}
		usage(stderr)
		fmt.Fprintf(stderr, "\nunknown command %q\n", name)
		return 2
	}
	fs := newFlagSet(name, cmd, stderr)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			commandUsage(stdout, name, cmd, fs)
			return 0
		}
		// The flags, then the error, so that it is not scrolled away.
		commandUsage(stderr, name, cmd, fs)
		fmt.Fprintf(stderr, "\naivis %s: %v\n", name, err)
		return 2
	}
	cfg, err := config.Load(fs)
	loaded := err == nil
	var devToken string
	if err == nil && name == "dev" && len(cfg.Ingest.Producers) == 0 && !cfg.Ingest.AllowAnonymous {
		// aivis dev makes a producer token of its own and prints it.
		devToken = ingest.NewToken()
		cfg.Ingest.Producers = []ingest.ProducerToken{{Name: "dev", TokenSHA256: ingest.HashToken(devToken)}}
	}
	if err == nil {
		if cmd.ingest {
			err = cfg.Validate()
		} else {
			err = cfg.ValidateWithoutIngest()
		}
	}
	if err != nil {
		// config validate --print shows what was loaded even when it is
		// invalid, so the keys can be compared with the file.
		if p, _ := fs.GetBool("print"); name == "config validate" && p && loaded {
			_ = printConfig(stdout, cfg)
		}
		fmt.Fprintf(stderr, "aivis %s: configuration is invalid:\n", name)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  - %s\n", line)
		}
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	slog.SetDefault(log)

	ctx, stop := signalContext(log)
	defer stop()
	if err := cmd.run(ctx, &env{cfg: cfg, fs: fs, log: log, out: stdout, err: stderr, args: fs.Args(), token: devToken}); err != nil {
		fmt.Fprintf(stderr, "aivis %s: %v\n", name, err)
		return 1
	}
	return 0
}

func pickCommand(args []string) (string, []string) {
	if len(args) == 0 {
		return "", nil
	}
	// The first word of a two-word command (config validate, catalog
	// import-litellm) takes the next one with it; a word that is a command
	// of its own (report) does so only for a two-word command (report
	// budgets), so that its flags still follow it.
	if len(args) > 1 {
		if _, ok := commands[args[0]+" "+args[1]]; ok {
			return args[0] + " " + args[1], args[2:]
		}
		if _, ok := commands[args[0]]; ok {
			return args[0], args[1:]
		}
		for name := range commands {
			if strings.HasPrefix(name, args[0]+" ") {
				return args[0] + " " + args[1], args[2:]
			}
		}
	}
	return args[0], args[1:]
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "aivis — continuous visibility into AI cost.\n\nUsage: aivis <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	width := 0
	for n := range commands {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `aivis <command> --help` for its flags. Configuration: --config FILE, AIVIS_SECTION__KEY=value, flags.")
}

// newFlagSet holds the configuration flags and the command's own. Parse
// errors and --help are printed by run, with the usage on the stream that
// fits, so pflag itself prints nothing.
func newFlagSet(name string, cmd command, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("aivis "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	config.Flags(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	return fs
}

// commandUsage prints the command's own flags, then the configuration
// flags, then how to set the keys that cannot be flags.
func commandUsage(w io.Writer, name string, cmd command, fs *pflag.FlagSet) {
	own := pflag.NewFlagSet(name, pflag.ContinueOnError)
	conf := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.VisitAll(func(f *pflag.Flag) {
		if config.IsConfigFlag(f) {
			conf.AddFlag(f)
		} else {
			own.AddFlag(f)
		}
	})
	fmt.Fprintf(w, "Usage: aivis %s [flags]\n\n%s.\n", name, cmd.summary)
	if own.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", own.FlagUsagesWrapped(usageColumns))
	}
	fmt.Fprintf(w, "\nConfiguration flags: each overrides the file (--config) and the environment;\n"+
		"every key is also an environment variable, e.g. --aggregate.instance_id is AIVIS_AGGREGATE__INSTANCE_ID.\n%s",
		conf.FlagUsagesWrapped(usageColumns))
	if footer := config.NotFlagsUsage(); footer != "" {
		fmt.Fprintf(w, "\n%s", footer)
	}
}

// usageColumns is the width flag descriptions are wrapped to.
const usageColumns = 120

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// signalContext is cancelled by the first SIGINT/SIGTERM, which starts a
// graceful drain; the second exits immediately.
func signalContext(log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			log.Info("stopping: draining stages (signal again to exit at once)", "signal", sig.String())
			cancel()
		case <-ctx.Done():
			return
		}
		<-ch
		log.Warn("second signal: exiting without draining")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
