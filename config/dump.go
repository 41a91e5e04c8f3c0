package config

import (
	"fmt"

	"github.com/goccy/go-yaml"
)

// Dump renders the effective configuration — defaults filled in, ${ENV}
// expanded — as YAML with every secret replaced by "<redacted>".
func (c *Config) Dump() ([]byte, error) {
	out, err := yaml.MarshalWithOptions(c, yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("config: unable to render the configuration: %w", err)
	}
	return out, nil
}
