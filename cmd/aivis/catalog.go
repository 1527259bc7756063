package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/pricing"
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
