// Command edgeingest is the reference platform-side receiver of the native
// MQTT uplink: it stores the gateways' messages in PostgreSQL and
// acknowledges them after commit. See docs/ingest.md.
//
//	edgeingest --mqtt URL --postgres DSN [--name N] [--prefix safety] [--group edgeingest]
//	edgeingest gaps --postgres DSN
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hazwatch/edgecollector/internal/ingest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  edgeingest --mqtt URL --postgres DSN [--name N] [--prefix safety] [--group edgeingest] [options]
      run a worker: shared subscription $share/<group>/<prefix>/+/+/{rt,rtd,event,stat,status,meta}
  edgeingest gaps --postgres DSN
      per gateway, the seq ranges that are neither stored nor named by a buffer_dropped or
      buffer_recreated event; exit 1 when there is one
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "gaps" {
		return gaps(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "edgeingest: unknown command %q\n%s", args[0], usage)
		return 2
	}
	o := ingest.DefaultOpts()
	fs := flag.NewFlagSet("edgeingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage, "options:\n"); fs.PrintDefaults() }
	fs.StringVar(&o.MQTT, "mqtt", "", "broker URL: tcp://host:1883, ssl://host:8883, ws://, wss://")
	fs.StringVar(&o.Postgres, "postgres", "", "PostgreSQL DSN, e.g. postgres://ingest@db/platform")
	fs.StringVar(&o.Name, "name", o.Name, "MQTT client id, unique per worker")
	fs.StringVar(&o.Prefix, "prefix", o.Prefix, "topic prefix (the gateways' uplink.mqtt.topic_prefix)")
	fs.StringVar(&o.Group, "group", o.Group, "shared-subscription group: workers in one group split the messages")
	fs.StringVar(&o.Username, "username", "", "MQTT user name")
	passEnv := fs.String("password-env", "", "read the MQTT password from this environment variable")
	passFile := fs.String("password-file", "", "read the MQTT password from this file")
	ca := fs.String("ca", "", "TLS: CA certificate file (PEM) to verify the broker")
	cert := fs.String("cert", "", "TLS: client certificate (PEM), for mutual TLS")
	key := fs.String("key", "", "TLS: client key (PEM)")
	serverName := fs.String("server-name", "", "TLS: the broker's name in its certificate")
	insecure := fs.Bool("insecure-skip-verify", false, "TLS: do not verify the broker's certificate (tests only)")
	fs.DurationVar(&o.BatchWindow, "batch", o.BatchWindow, "how long messages wait to share one transaction")
	fs.DurationVar(&o.StatsEvery, "stats", o.StatsEvery, "log the counters this often (0: never)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgeingest: unexpected argument %q\n%s", fs.Arg(0), usage)
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "edgeingest: --log-level: %v\n", err)
		return 2
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	var err error
	if o.Password, err = password(*passEnv, *passFile); err != nil {
		fmt.Fprintf(stderr, "edgeingest: %v\n", err)
		return 2
	}
	if o.TLS, err = tlsConfig(o.MQTT, *ca, *cert, *key, *serverName, *insecure); err != nil {
		fmt.Fprintf(stderr, "edgeingest: %v\n", err)
		return 2
	}
	w, err := ingest.New(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgeingest: %v\n", err)
		return 2
	}
	if err := w.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "edgeingest: %v\n", err)
		return 1
	}
	c := w.Counters()
	o.Log.Info("stopped", "received", c.Received, "stored", c.Stored, "duplicates", c.Duplicates, "rejected", c.Rejected, "acked", c.Acked)
	return 0
}

func password(env, file string) (string, error) {
	switch {
	case env != "" && file != "":
		return "", errors.New("give --password-env or --password-file, not both")
	case env != "":
		p, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("--password-env: %s is not set", env)
		}
		return p, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}

func tlsConfig(url, ca, cert, key, serverName string, insecure bool) (*tls.Config, error) {
	secure := strings.HasPrefix(url, "ssl://") || strings.HasPrefix(url, "tls://") || strings.HasPrefix(url, "wss://") || strings.HasPrefix(url, "mqtts://")
	if !secure && ca == "" && cert == "" {
		return nil, nil
	}
	c := &tls.Config{ServerName: serverName, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c, nil
}

func gaps(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgeingest gaps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("postgres", "", "PostgreSQL DSN")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dsn == "" {
		fmt.Fprintf(stderr, "edgeingest gaps: --postgres is required\n")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, *dsn)
	if err != nil {
		fmt.Fprintf(stderr, "edgeingest gaps: --postgres: %v\n", err)
		return 2
	}
	defer pool.Close()
	gs, err := ingest.Gaps(ctx, pool)
	if err != nil {
		fmt.Fprintf(stderr, "edgeingest gaps: %v\n", err)
		return 2
	}
	if ingest.PrintGaps(stdout, gs) > 0 {
		return 1
	}
	return 0
}
