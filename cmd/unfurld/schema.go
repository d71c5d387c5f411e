package main

import (
	"github.com/unfurld/unfurld/engine/config"
)

// schemaCmd prints the JSON Schema of the configuration file, generated
// from the same table as the configuration reference (docs/configuration.md). Editors
// use it through a modeline at the top of a config file:
//
//	# yaml-language-server: $schema=docs/unfurld.schema.json
func schemaCmd(args []string, e env) int {
	fs := newFlagSet("schema", e)
	if _, err := parseFlags(fs, args); err != nil {
		return exitUsage
	}
	if _, err := e.stdout.Write(config.Schema()); err != nil {
		return exitFailure
	}
	return exitOK
}
