package buffer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hazwatch/edgecollector/edge"
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

// SelfProbe returns a Probe that runs this executable with prefix followed
// by the probe's arguments; the executable must hand those to ProbeMain (the
// collector: its hidden buffer-probe subcommand). It returns nil when the
// executable cannot be found.
func SelfProbe(prefix ...string) func(ctx context.Context, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, exe, append(append([]string(nil), prefix...), args...)...)
	}
}

// ProbeMain is the child side of the probe: "[-profile P] [-salvage FILE]
// DBDIR". It exits 0 when the database opens, verifies and closes cleanly,
// probeInUse when another process holds it, 1 on an error; a panic exits 2.
// With -salvage it instead copies every message record it can read to FILE
// as it goes (what it wrote before a panic stays usable).
func ProbeMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("buffer-probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "small", "badger profile")
	salvage := fs.String("salvage", "", "copy the readable message records of a damaged database to this file")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: buffer-probe [-profile small|default] [-salvage FILE] DBDIR")
		return 1
	}
	var err error
	if *salvage != "" {
		err = Salvage(fs.Arg(0), *profile, *salvage)
	} else {
		err = Probe(fs.Arg(0), *profile)
	}
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
func runProbe(ctx context.Context, probe func(context.Context, ...string) *exec.Cmd, timeout time.Duration, args ...string) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := probe(pctx, args...)
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

// Salvage copies every message record it can read from the damaged database
// in dbDir to out, as frames of uvarint seq, uvarint length and the record,
// flushed every 32 KiB so that what was read before a panic stays usable.
// It opens the database read-write without compaction (badger's read-only
// mode refuses a write-ahead log with a tail to cut) and never closes it:
// the kept copy is left as a crash would leave it. Run it in a child process.
func Salvage(dbDir, profile, out string) error {
	f, err := os.OpenFile(out, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	opts := badgerOptions(BadgerOpts{Profile: profile, Logger: slog.New(slog.DiscardHandler)}, dbDir).
		WithNumCompactors(0).WithCompactL0OnClose(false)
	db, err := badger.Open(opts)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	var frame []byte
	n := 0
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if len(item.Key()) != 9 {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				continue // this record is lost; the others may not be
			}
			frame = binary.AppendUvarint(frame[:0], binary.BigEndian.Uint64(item.Key()[1:]))
			frame = binary.AppendUvarint(frame, uint64(len(v)))
			w.Write(frame)
			w.Write(v)
			n++
			if w.Buffered() >= 32<<10 {
				if err := w.Flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if serr := f.Sync(); err == nil {
		err = serr
	}
	return err
}

// readSalvage reads the frames Salvage wrote, up to the first incomplete
// one, and returns the messages whose records decode (and pass their
// checksum), by seq.
func readSalvage(path string, loc *time.Location) ([]*edge.Message, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*edge.Message
	for len(b) > 0 {
		seq, n := binary.Uvarint(b)
		if n <= 0 {
			break
		}
		size, k := binary.Uvarint(b[n:])
		if k <= 0 || size > uint64(len(b)-n-k) {
			break
		}
		rec := b[n+k : n+k+int(size)]
		b = b[n+k+int(size):]
		if m, err := DecodeRecord(rec, seq, loc); err == nil && seq > 0 {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}
