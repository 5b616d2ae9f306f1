package buffer

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The probe opens the database in a child process of the same binary before
// the collector opens it. badger starts goroutines in Open (table loading,
// compaction) that panic on some damaged files; a panic in a goroutine we do
// not own cannot be recovered and ends the process. In a child it ends only
// the child, and the parent moves the database aside instead of crash-looping.

// errInUse: another process holds the database.
var errInUse = errors.New("database locked")

// probeInUse is the probe's exit code for a database in use.
const probeInUse = 3

// SelfProbe returns a Probe that runs this executable with args followed by
// "-profile P DBDIR"; the executable must hand those arguments to ProbeMain
// (the collector: its hidden buffer-probe subcommand). It returns nil when
// the executable cannot be found.
func SelfProbe(args ...string) func(ctx context.Context, dbDir, profile string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return func(ctx context.Context, dbDir, profile string) *exec.Cmd {
		return exec.CommandContext(ctx, exe, append(append([]string(nil), args...), "-profile", profile, dbDir)...)
	}
}

// ProbeMain is the child side of the probe: "[-profile P] DBDIR". It exits 0
// when the database opens, verifies and closes cleanly, probeInUse when
// another process holds it, 1 on an error; a panic exits 2.
func ProbeMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("buffer-probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "small", "badger profile")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: buffer-probe [-profile small|default] DBDIR")
		return 1
	}
	err := Probe(fs.Arg(0), *profile)
	if errors.Is(err, errInUse) {
		fmt.Fprintln(stderr, err)
		return probeInUse
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// Probe opens the database in dbDir as the store does, verifies the checksum
// of every table block, reads every value, and closes it. Run it in a child
// process (ProbeMain): damage can make it panic.
func Probe(dbDir, profile string) error {
	db, err := badger.Open(badgerOptions(BadgerOpts{Profile: profile, Logger: slog.New(slog.DiscardHandler)}, dbDir))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return fmt.Errorf("%w: %v", errInUse, err)
		}
		return fmt.Errorf("open: %w", err)
	}
	if err := db.VerifyChecksum(); err != nil {
		db.Close()
		return fmt.Errorf("verify tables: %w", err)
	}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := it.Item().Value(func([]byte) error { return nil }); err != nil {
				return fmt.Errorf("read value of key %x: %w", it.Item().Key(), err)
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return err
}

// runProbe runs the probe command with a timeout and returns why it failed,
// with the end of its output.
func runProbe(ctx context.Context, probe func(context.Context, string, string) *exec.Cmd, dbDir, profile string, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := probe(pctx, dbDir, profile)
	var out head
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	said := ""
	if o := out.String(); o != "" {
		said = ": " + o
	}
	if pctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return fmt.Errorf("did not finish in %s (killed)%s", timeout, said)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		// The probe never ran (its executable is gone, say): that says
		// nothing about the database.
		return fmt.Errorf("%w: %v", errNoProbe, err)
	}
	if ee.ExitCode() == probeInUse {
		return fmt.Errorf("%w%s", errInUse, said)
	}
	return fmt.Errorf("%v%s", err, said)
}

// errNoProbe: the probe process could not be started.
var errNoProbe = errors.New("probe not started")

// head keeps the first 2 KiB written to it: a panic's message and where.
type head struct{ b []byte }

func (t *head) Write(p []byte) (int, error) {
	if n := 2048 - len(t.b); n > 0 {
		t.b = append(t.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (t *head) String() string {
	s := strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil)))
	// A panic's first lines say what happened and where; keep it short.
	if i := strings.Index(s, "\ngoroutine "); i >= 0 {
		rest := s[i+1:]
		s = s[:i]
		// the panicking function: the first frame after the header
		if lines := strings.SplitN(rest, "\n", 3); len(lines) >= 2 {
			s += " in " + lines[1]
		}
	}
	return strings.Join(strings.Fields(s), " ")
}
