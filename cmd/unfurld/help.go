package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one subcommand: its entry point and the text `unfurld help
// CMD` and `unfurld CMD --help` print. The flags are listed from the
// command's own flag set, so help cannot drift from what is parsed.
//
// The standard flag package plus this table is all the CLI needs: the
// commands are flat (no nesting), every one already parses its own flag
// set, and a library (kong, cobra) would move each command's flags into
// struct tags or builders for no behaviour the table lacks.
type command struct {
	name string
	// args is the synopsis after the command's name.
	args string
	// summary is one line for the overview.
	summary string
	// description is a paragraph or two for the command's own help.
	description string
	// example is one or more shell lines.
	example string
	run     func(ctx context.Context, args []string, e env) int
}

// helpRequest is set on env while a command runs only to print its help:
// its flag set's Usage prints the command's help to stdout, and the
// command returns at the parse without doing anything.
type helpRequest struct {
	cmd     command
	printed bool
}

// helpRequested reports whether args ask for help (-h, -help, --help)
// before a "--" that ends the flags.
func helpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// printOverview prints the list of commands.
func printOverview(w io.Writer, cmds []command) {
	fmt.Fprint(w, "unfurld serves Notion Link Previews for providers declared in YAML.\n\nUsage:\n")
	for _, c := range cmds {
		line := "  unfurld " + c.name
		if c.args != "" {
			line += " " + c.args
		}
		if len(line) > 46 {
			fmt.Fprintf(w, "%s\n  %-46s %s\n", line, "", c.summary)
			continue
		}
		fmt.Fprintf(w, "%-48s %s\n", line, c.summary)
	}
	fmt.Fprint(w, `
--config defaults to $UNFURLD_CONFIG, then config.yaml.
Run 'unfurld help COMMAND' or 'unfurld COMMAND --help' for a command's
description, flags and an example.
`)
}

// printCommandHelp prints one command's help with the flags of fs.
func printCommandHelp(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: unfurld %s %s\n\n", c.name, c.args)
	fmt.Fprintln(w, strings.TrimSpace(c.description))
	if fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nFlags:")
			out := fs.Output()
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(out)
		}
	}
	if c.example != "" {
		fmt.Fprintln(w, "\nExample:")
		for _, line := range strings.Split(strings.TrimSpace(c.example), "\n") {
			fmt.Fprintln(w, "  "+strings.TrimSpace(line))
		}
	}
}
