package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func catalogImportFlags(fs *pflag.FlagSet) {
	fs.String("in", "", "LiteLLM model_prices_and_context_window.json to read")
	fs.String("out", "", "catalog YAML to write (\"-\" for standard output)")
	fs.String("litellm-version", "", "LiteLLM commit or release the file came from, recorded in catalog_version")
}

// runCatalogImport converts LiteLLM's price map into an aivis catalog. The
// output is written to a temporary file and renamed, so a failed import
// never leaves a half-written catalog behind.
func runCatalogImport(_ context.Context, e *env) error {
	in, _ := e.fs.GetString("in")
	out, _ := e.fs.GetString("out")
	version, _ := e.fs.GetString("litellm-version")
	if in == "" || out == "" {
		return errors.New("--in and --out are required, e.g. aivis catalog import-litellm --in model_prices_and_context_window.json --out catalog.yaml")
	}
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("opening the LiteLLM price map: %w", err)
	}
	defer f.Close()
	data, err := pricing.ImportLiteLLM(f, version)
	if err != nil {
		return fmt.Errorf("importing %q: %w", in, err)
	}
	if out == "-" {
		_, err = e.out.Write(data)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".catalog-*.yaml")
	if err != nil {
		return fmt.Errorf("writing %q: %w", out, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %q: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %q: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("writing %q: %w", out, err)
	}
	e.log.Info("wrote the imported catalog", "out", out, "bytes", len(data))
	return nil
}

func catalogDiffFlags(fs *pflag.FlagSet) {
	fs.String("against", "", "price list to compare with: a LiteLLM price map, genai-prices data.json or an aivis catalog (.gz accepted)")
	fs.String("format", "", "format of --against: litellm, genai-prices or aivis (default: guessed from the content)")
	fs.String("catalog", "", "catalog to check (default: enrich.catalog_path, or the built-in one)")
	fs.String("exceptions", "", "reviewed exceptions YAML (default: the built-in pricing/defaults/exceptions.yaml)")
	fs.String("source-name", "", "name of the source in the exceptions file (default: the format)")
	fs.Bool("all", false, "also print the differences that exceptions cover")
}

// runCatalogDiff lists every difference between the catalog in use and
// another price list, and fails when one is not covered by a reviewed
// exception.
func runCatalogDiff(_ context.Context, e *env) error {
	against, _ := e.fs.GetString("against")
	format, _ := e.fs.GetString("format")
	if against == "" {
		return errors.New("--against is required, e.g. aivis catalog diff --against model_prices_and_context_window.json --format litellm")
	}
	catalogPath := e.cfg.Enrich.CatalogPath
	if c, _ := e.fs.GetString("catalog"); c != "" {
		catalogPath = c
	}
	cat, err := pricing.Load(catalogPath, "")
	if err != nil {
		return err
	}
	data, err := readMaybeGzip(against)
	if err != nil {
		return err
	}
	if format == "" {
		format = guessFormat(data)
	}
	var other *pricing.Catalog
	switch format {
	case "litellm", "genai-prices":
		imp := pricing.ImportLiteLLM
		if format == "genai-prices" {
			imp = pricing.ImportGenAIPrices
		}
		y, err := imp(bytes.NewReader(data), filepath.Base(against))
		if err != nil {
			return fmt.Errorf("importing %q as %s: %w", against, format, err)
		}
		other, err = pricing.ParseCatalog(y)
		if err != nil {
			return fmt.Errorf("importing %q as %s: %w", against, format, err)
		}
	case "aivis":
		if other, err = pricing.ParseCatalog(data); err != nil {
			return fmt.Errorf("loading catalog %q: %w", against, err)
		}
	default:
		return fmt.Errorf("--format %q must be litellm, genai-prices or aivis", format)
	}
	var x *pricing.Exceptions
	if p, _ := e.fs.GetString("exceptions"); p != "" {
		x, err = pricing.LoadExceptions(p)
	} else {
		x, err = pricing.DefaultExceptions()
	}
	if err != nil {
		return err
	}
	name, _ := e.fs.GetString("source-name")
	if name == "" {
		name = format
	}
	all, _ := e.fs.GetBool("all")
	diffs := pricing.Diff(cat, other)
	open, _ := x.Filter(name, diffs)
	shown := open
	if all {
		shown = diffs
	}
	for _, d := range shown {
		fmt.Fprintln(e.out, d.String())
	}
	fmt.Fprintf(e.out, "catalog %s against %s (%s): %d differences, %d covered by exceptions, %d not\n",
		cat.Version(), against, name, len(diffs), len(diffs)-len(open), len(open))
	if len(open) > 0 {
		return fmt.Errorf("%d differences are not covered by an exception: fix the catalog, or add a reviewed exception with its reason and source URL", len(open))
	}
	return nil
}

// guessFormat tells the three formats apart by their first bytes.
func guessFormat(data []byte) string {
	t := bytes.TrimSpace(data)
	switch {
	case len(t) > 0 && t[0] == '[':
		return "genai-prices"
	case len(t) > 0 && t[0] == '{':
		return "litellm"
	}
	return "aivis"
}

func readMaybeGzip(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("opening %q: %w", path, err)
	}
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	z, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("reading gzip %q: %w", path, err)
	}
	out, err := io.ReadAll(io.LimitReader(z, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading gzip %q: %w", path, err)
	}
	return out, nil
}

func catalogCheckFlags(fs *pflag.FlagSet) {
	fs.String("catalog", "", "catalog to check (default: enrich.catalog_path, or the built-in one)")
	fs.Int("max-age-days", 90, "warn about entries whose retrieved_at is older than this many days")
	fs.Int("traffic-days", 7, "with ClickHouse configured (--clickhouse.addr, AIVIS_CLICKHOUSE__ADDR or --config), list models seen in usage_events over this many days that the catalog does not price; 0 skips")
}

// clickHouseConfigured reports whether the user named a ClickHouse server
// rather than relying on the built-in default address.
func clickHouseConfigured(fs *pflag.FlagSet) bool {
	if fs.Changed("clickhouse.addr") || os.Getenv(config.EnvPrefix+"CLICKHOUSE__ADDR") != "" {
		return true
	}
	path, _ := fs.GetString("config")
	return path != ""
}

// runCatalogCheck fails on a catalog that does not load and warns about
// entries without provenance or not re-read within --max-age-days. With
// ClickHouse configured it also lists the models of recent traffic that
// the catalog does not price.
func runCatalogCheck(ctx context.Context, e *env) error {
	path := e.cfg.Enrich.CatalogPath
	if c, _ := e.fs.GetString("catalog"); c != "" {
		path = c
	}
	days, _ := e.fs.GetInt("max-age-days")
	if days <= 0 {
		return errors.New("--max-age-days must be positive")
	}
	trafficDays, _ := e.fs.GetInt("traffic-days")
	if trafficDays < 0 {
		return errors.New("--traffic-days must be 0 (skip) or positive")
	}
	var data []byte
	var err error
	name := path
	if path == "" {
		data, name = pricing.DefaultCatalogYAML(), "the built-in catalog"
	} else if data, err = os.ReadFile(path); err != nil {
		return fmt.Errorf("opening catalog %q: %w", path, err)
	}
	findings, err := pricing.CheckCatalog(data, time.Now(), time.Duration(days)*24*time.Hour)
	if err != nil {
		return fmt.Errorf("checking %s: %w", name, err)
	}
	for _, f := range findings {
		fmt.Fprintf(e.out, "warning: %s\n", f)
	}
	fmt.Fprintf(e.out, "%s loads; %d warnings\n", name, len(findings))
	if trafficDays == 0 || !clickHouseConfigured(e.fs) {
		return nil
	}
	cfg := e.cfg.Enrich
	cfg.CatalogPath = path
	cat, err := cfg.LoadCatalog()
	if err != nil {
		return err
	}
	return checkTraffic(ctx, e, cat, trafficDays)
}

// checkTraffic lists the (provider, model) pairs of llm.request events in
// usage_events over the last days that cat does not price at their latest
// time. It prints them as warnings; a catalog missing models is stale, not
// broken.
func checkTraffic(ctx context.Context, e *env, cat *pricing.Catalog, days int) error {
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	since := time.Now().UTC().Add(-time.Duration(days) * 24 * time.Hour)
	rows, err := store.Query(ctx, chsink.TrafficModelsQuery, schemas.KindLLMRequest, since.Unix())
	if err != nil {
		return fmt.Errorf("reading the models of recent traffic from %s (has `aivis migrate` run against this database?): %w", chsink.TableEvents, err)
	}
	defer rows.Close()
	seen, missing := 0, 0
	for rows.Next() {
		var provider, model string
		var n uint64
		var last uint32
		if err := rows.Scan(&provider, &model, &n, &last); err != nil {
			return fmt.Errorf("reading the models of recent traffic: %w", err)
		}
		seen++
		if _, ok := cat.Resolves(provider, model, time.Unix(int64(last), 0).UTC()); ok {
			continue
		}
		missing++
		fmt.Fprintf(e.out, "warning: traffic: %s %s: %d requests in the last %d days, not priced by the catalog\n",
			report.Printable(provider), report.Printable(model), n, days)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the models of recent traffic: %w", err)
	}
	fmt.Fprintf(e.out, "traffic of the last %d days: %d models, %d not priced\n", days, seen, missing)
	return nil
}
