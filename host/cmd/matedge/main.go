// Command matedge runs the matedge wasm module from the command line: generate
// text, inspect weights files, serve the browser demo, train and evaluate.
//
//	matedge generate -prompt "It is a truth" -n 64 -mix S
//	matedge inspect model.matw
//	matedge serve -addr 127.0.0.1:8080
//
// Run `matedge COMMAND -help` for a command's flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. Each lives in its own file and registers itself.
type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stdout)
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "matedge: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "matedge %s: %s\n", c.name, oneLine(err))
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "matedge runs elastic MatFormer transformers: one weights file, many submodels.")
	fmt.Fprintln(w, "\nUsage: matedge COMMAND [flags]   (matedge COMMAND -help for its flags)\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

// oneLine joins a multi-line error (errors.Join) so that every failure is one
// line on stderr.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// newFlags makes a flag set whose -help prints a description before the flags.
func newFlags(name, usageLine, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: matedge %s %s\n\n%s\n\nFlags:\n", name, usageLine, description)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags that may come before or after positional arguments
// ("inspect model.matw -json") and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
