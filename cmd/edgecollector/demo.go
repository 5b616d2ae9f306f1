package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hazwatch/edgecollector/internal/demo"
)

// cmdDemo runs the embedded default: the simulated tank farm as Modbus TCP
// slaves, an in-process MQTT broker, and the collector between them.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flags("demo", stderr)
	var o demo.Opts
	fs.StringVar(&o.PLC, "plc", "127.0.0.1:15020", "address of the simulated tank PLC (Modbus TCP: units 1, 2, 10)")
	fs.StringVar(&o.Gas, "gas", "127.0.0.1:15021", "address of the simulated gas controller (Modbus TCP: units 1, 2, 3)")
	fs.StringVar(&o.Broker, "mqtt", "127.0.0.1:11883", "address of the in-process MQTT broker")
	fs.StringVar(&o.Status, "status", "127.0.0.1:15080", "loopback address of the local status page (/, /status, /metrics); empty: off")
	fs.StringVar(&o.Data, "data", "", "data dir (default: a temporary one, removed at exit)")
	fs.DurationVar(&o.For, "for", 0, "stop after this long (default: until Ctrl-C)")
	fs.BoolVar(&o.Quiet, "quiet", false, "print events and status only, not every reading")
	fs.StringVar(&o.Level, "log", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&o.ModbusServer, "modbus-server", "127.0.0.1:15022", "address of the control room's read-only Modbus TCP server (\"\" turns it off; map: edgecollector modbus-map)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	switch err := demo.Run(ctx, o, stdout, stderr, serve); {
	case errors.Is(err, demo.ErrUsage):
		fmt.Fprintln(stderr, "demo:", err)
		return exitInvalid
	case err != nil:
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	return exitOK
}

func hostOf(a string) string { return a[:strings.LastIndexByte(a, ':')] }
func portOf(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
