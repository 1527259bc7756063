package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/config"
)

// printConfig writes the effective configuration with the same keys the
// YAML file takes. Secrets are masked: the ClickHouse and Kafka SASL
// passwords print as <set> (a password file by its path), and a token hash
// that is not a SHA-256 (most likely the token itself, pasted by mistake)
// prints only as its length.
func printConfig(w io.Writer, c config.Config) error {
	for _, pw := range []*string{&c.ClickHouse.Password, &c.Kafka.SASL.Password} {
		if *pw != "" {
			*pw = "<set>"
		}
	}
	c.Ingest.Producers = slices.Clone(c.Ingest.Producers) // the caller's stay as they are
	for i, p := range c.Ingest.Producers {
		c.Ingest.Producers[i].TokenSHA256 = maskTokenHash(p.TokenSHA256)
		hashes := make([]string, len(p.TokensSHA256))
		for j, h := range p.TokensSHA256 {
			hashes[j] = maskTokenHash(h)
		}
		c.Ingest.Producers[i].TokensSHA256 = hashes
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

// maskTokenHash returns a token hash as the ingest API compares it
// (lowercase), and anything else as a note that hides it.
func maskTokenHash(s string) string {
	switch {
	case s == "":
		return ""
	case ingest.IsTokenHash(s):
		return strings.ToLower(s)
	}
	return fmt.Sprintf("<not a SHA-256: %d characters hidden>", utf8.RuneCountInString(s))
}
