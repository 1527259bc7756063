package main

import (
	"fmt"
	"io"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"

	"github.com/aivis-dev/aivis/internal/config"
)

// printConfig writes the effective configuration with the same keys the
// YAML file takes; secrets are masked.
func printConfig(w io.Writer, c config.Config) error {
	if c.ClickHouse.Password != "" {
		c.ClickHouse.Password = "********"
	}
	k := koanf.New(".")
	if err := k.Load(structs.Provider(c, "koanf"), nil); err != nil {
		return fmt.Errorf("printing the configuration: %w", err)
	}
	b, err := k.Marshal(yaml.Parser())
	if err != nil {
		return fmt.Errorf("printing the configuration: %w", err)
	}
	_, err = w.Write(b)
	return err
}
