package modbusserver

import (
	"flag"
	"fmt"
	"io"

	"github.com/hazwatch/edgecollector/config"
)

// Command is `edgecollector modbus-map -c FILE [-format text|csv]`: it
// prints the register map the config's modbus_server serves (or would
// serve, with its defaults, when the config leaves it off). It returns the
// exit code: 0, 1 on failure, 2 for a bad config or bad usage.
func Command(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("modbus-map", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config file")
	format := fs.String("format", "text", "text or csv")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "missing -c FILE: the config whose map to print")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if ps, ok := config.AsProblems(err); ok {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", *path, len(ps))
		}
		return 2
	}
	m, err := FromConfig(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *format != "text" && *format != "csv" {
		fmt.Fprintf(stderr, "unknown -format %q: want text or csv\n", *format)
		return 2
	}
	if *format == "text" {
		if s := cfg.ModbusServer; s != nil {
			fmt.Fprintf(stdout, "# modbus_server on %s, unit %d; 0-based addresses (mbpoll -0); writes are refused with exception 01\n", s.Listen, *s.Unit)
		} else {
			fmt.Fprintf(stdout, "# modbus_server is off in %s; this is the map it would serve (unit %d); 0-based addresses (mbpoll -0)\n", *path, config.DefaultModbusUnit)
		}
	}
	if err := m.WriteText(stdout, *format); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
