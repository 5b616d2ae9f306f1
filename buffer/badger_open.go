package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hazwatch/edgecollector/edge"
)

// degradedOpening is the state while the first open has not settled.
const degradedOpening = "opening the database"

// settle runs the first open in the background goroutine and marks the open
// settled: Append stops waiting, and the uplinks are told to read their
// backlog again.
func (s *Badger) settle(ctx context.Context) {
	var pending []*edge.Message
	err := s.firstOpen(ctx, &pending)
	s.mu.Lock()
	s.opening = false
	if s.degraded == degradedOpening {
		s.degraded = ""
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		s.openErr = err
		s.log.Error("buffer database cannot be opened; messages are held in memory, retrying", "err", err)
		s.degrade(fmt.Sprintf("open: %v", err))
	}
	close(s.opened)
	if len(pending) > 0 && !s.closed {
		if err := s.appendLocked(pending); err != nil && !errors.Is(err, ErrNotDurable) {
			s.log.Error("buffer: cannot append the open's reports", "err", err)
		}
	}
	if s.db != nil && s.degraded == "" {
		s.writeMarks()
	}
	s.signalRescan()
	s.mu.Unlock()
	s.signal()
}

// firstOpen reads the seq files, decides whether the database can be opened
// in this process (the probe runs without the lock: it may take long), and
// opens it or starts a new one.
func (s *Badger) firstOpen(ctx context.Context, pending *[]*edge.Message) error {
	ceiling, err := readCeiling(s.opts.Dir)
	if err != nil {
		s.log.Error("seq ceiling file unreadable; it is rewritten at the next append", "err", err)
	}
	mk, err := readMarks(s.opts.Dir)
	if err != nil {
		s.log.Error("low-water mark file unreadable", "err", err)
	}
	memLast, _ := readSeqFile(filepath.Join(s.opts.Dir, memorySeqFile))
	s.mu.Lock()
	s.ceiling, s.marks = ceiling, mk
	s.before = before{ceiling: ceiling, memLast: memLast}
	s.mu.Unlock()

	why, err := s.damaged(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.starting = true
	defer func() { s.starting = false }()
	if why != "" {
		err = s.recreate(why, pending)
	} else {
		err = s.openDB(pending)
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.opts.Dir, memorySeqFile)); errors.Is(err, os.ErrNotExist) && s.degraded == degradedOpening {
		// Created while the disk has room, so that it can be rewritten in
		// place on a full one.
		writeSeqFile(filepath.Join(s.opts.Dir, memorySeqFile), s.last)
	}
	return nil
}

// maxOpenAttempts: this many opens in a row that never completed (the
// process died inside badger.Open) mark the database as damaged.
const maxOpenAttempts = 3

// damaged returns why the database must not be opened in this process, or
// "" when it may be. It runs the probe when one is configured.
func (s *Badger) damaged(ctx context.Context) (string, error) {
	db := s.dbDir()
	entries, err := os.ReadDir(db)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // a new database; load names what it cannot hold
	}
	if err != nil {
		return fmt.Sprintf("database directory unreadable: %v", err), nil
	}
	hasData, hasManifest := false, false
	for _, e := range entries {
		switch n := e.Name(); {
		case n == "MANIFEST":
			hasManifest = true
		case strings.HasSuffix(n, ".sst") || strings.HasSuffix(n, ".vlog") || strings.HasSuffix(n, ".mem"):
			hasData = true
		}
	}
	if hasData && !hasManifest {
		return "its MANIFEST is missing", nil
	}
	if n := openAttempts(s.opts.Dir); n >= maxOpenAttempts {
		return fmt.Sprintf("%d opens in a row did not complete", n), nil
	}
	if s.opts.Probe == nil {
		return "", nil
	}
	if free, err := s.opts.FreeSpace(s.opts.Dir); err == nil && free < openFloor {
		return "", nil // not opened at all: openDB degrades
	}
	start := time.Now()
	err = runProbe(ctx, s.opts.Probe, s.opts.ProbeTimeout, "-profile", s.opts.Profile, db)
	switch {
	case err == nil:
		s.log.Info("buffer database verified", "took", time.Since(start).Round(time.Millisecond))
		return "", nil
	case ctx.Err() != nil:
		return "", ErrClosed
	case errors.Is(err, errInUse):
		return "", fmt.Errorf("buffer: %s is in use by another collector: %w", db, err)
	case errors.Is(err, errNoProbe):
		s.log.Error("buffer database probe could not be started; opening the database in this process", "err", err)
		return "", nil
	}
	if free, ferr := s.opts.FreeSpace(s.opts.Dir); ferr == nil && free < s.opts.MinFree {
		// badger dies with SIGBUS on a full disk: that is not damage.
		s.log.Error("buffer database probe failed on a full disk; not treated as damage", "err", err)
		return "", nil
	}
	return fmt.Sprintf("opening it failed in a probe process: %v", err), nil
}

// openDB opens the database or falls back; events to append are added to
// pending. Called with mu held, at open and, while degraded, by the retry
// loop.
func (s *Badger) openDB(pending *[]*edge.Message) error {
	free, err := s.opts.FreeSpace(s.opts.Dir)
	if err == nil && free < openFloor {
		// Too full even to open (opening writes a little). Without the
		// database the last seq is unknown: continue above the ceiling,
		// which no seq ever passed; the seqs skipped are reported once the
		// database opens.
		s.degrade(fmt.Sprintf("disk full: %d bytes free, %d needed to open the database", free, openFloor))
		if s.last == 0 {
			s.last = s.ceiling
			s.skipTo = s.ceiling
		}
		return nil
	}
	countOpenAttempt(s.opts.Dir)
	db, err := badger.Open(badgerOptions(s.opts, s.dbDir()))
	if err != nil {
		clearOpenAttempts(s.opts.Dir)
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return fmt.Errorf("buffer: %s is in use by another collector: %w", s.dbDir(), err)
		}
		return s.recreate(fmt.Sprintf("badger cannot open it: %v", err), pending)
	}
	clearOpenAttempts(s.opts.Dir)
	s.setDB(db)
	if err := s.load(pending); err != nil {
		s.closeDB(db)
		return err
	}
	if free < s.opts.MinFree {
		// Opened to know where seqs stand, but nothing is appended to it
		// until there is room.
		s.degrade(fmt.Sprintf("disk full: %d bytes free, %d needed", free, s.opts.MinFree))
	}
	return nil
}

// openFloor is the free space below which the database is not even opened.
const openFloor = 8 << 20

// recreate moves the database aside (kept) and starts a new one, naming
// every seq the old one held unacknowledged (from the low-water mark) as
// lost and the rest up to the ceiling as never issued.
func (s *Badger) recreate(why string, pending *[]*edge.Message) error {
	aside := fmt.Sprintf("%s.corrupt-%s", s.dbDir(), s.opts.now().Format("20060102T150405.000"))
	kept := "nothing was left to keep"
	salvaged := s.salvage()
	if _, err := os.Stat(s.dbDir()); err == nil {
		s.log.Error("buffer database cannot be used; moving it aside and starting a new one", "reason", why, "kept_as", aside)
		if err := os.Rename(s.dbDir(), aside); err != nil {
			return fmt.Errorf("buffer: %s (%s) cannot be moved aside: %w", s.dbDir(), why, err)
		}
		kept = "kept as " + aside
	}
	db, err := badger.Open(badgerOptions(s.opts, s.dbDir()))
	if err != nil {
		return fmt.Errorf("buffer: create new database %s: %w", s.dbDir(), err)
	}
	s.setDB(db)
	what := fmt.Sprintf("the buffer database was recreated: %s; %s", why, kept)
	// What could be read goes into the new database under its seqs, before
	// anything is marked gone: a crash in between leaves gaps that the next
	// open names.
	low := max(s.marks.low, 1)
	var keep []*edge.Message
	for _, m := range salvaged {
		if m.Seq >= low && m.Seq <= max(s.before.ceiling, s.marks.last) {
			keep = append(keep, m)
		}
	}
	if len(keep) > 0 {
		written := 0
		for written < len(keep) { // in batches the size of the appender's
			n, err := s.write(keep[written:min(len(keep), written+64)])
			written += n
			if err != nil {
				s.log.Error("buffer: cannot write the salvaged messages into the new database", "err", err, "written", written)
				break
			}
		}
		keep = keep[:written]
		what += fmt.Sprintf("; %d unacknowledged messages were read back from it and kept", len(keep))
		s.log.Warn("buffer: messages salvaged from the damaged database", "count", len(keep))
	}
	s.nameLost(what, pending, keep)
	return nil
}

// salvage reads what it can of the damaged database, in a child process
// (reading it may panic). It returns nothing without a probe.
func (s *Badger) salvage() []*edge.Message {
	if s.opts.Probe == nil {
		return nil
	}
	if _, err := os.Stat(s.dbDir()); err != nil {
		return nil
	}
	out := filepath.Join(s.opts.Dir, "db.salvage")
	defer os.Remove(out)
	err := runProbe(context.Background(), s.opts.Probe, s.opts.ProbeTimeout, "-salvage", out, "-profile", s.opts.Profile, s.dbDir())
	msgs, rerr := readSalvage(out, s.opts.Location)
	if err != nil || rerr != nil {
		s.log.Warn("buffer: salvage of the damaged database stopped early", "err", err, "read_err", rerr, "messages", len(msgs))
	}
	return msgs
}

// nameLost is used when the database holds nothing of what was issued
// before (recreated, deleted or emptied): the seqs from the low-water mark
// to the last known issued seq were issued and are lost (buffer_dropped,
// corrupt); those above, up to the ceiling, were never issued
// (buffer_recreated). Seqs continue above the ceiling.
//
// Only what earlier runs issued counts: seqs this run issued while the
// database could not be opened are in the memory queue, not lost.
func (s *Badger) nameLost(what string, pending *[]*edge.Message, kept []*edge.Message) {
	var have ackSet // seqs kept in the new database (salvaged)
	for _, m := range kept {
		have.Add(m.Seq)
	}
	issued := max(s.marks.last, s.before.memLast)
	if n := len(kept); n > 0 {
		issued = max(issued, kept[n-1].Seq)
	}
	low := s.marks.low
	if low == 0 {
		low = 1 // no mark (an older release): everything may be unacknowledged
	}
	top := max(s.before.ceiling, issued)
	now := s.opts.now()
	if low <= issued {
		lost := have.Missing(low, issued)
		var n uint64
		for _, r := range lost {
			n += r.Count()
		}
		if n > 0 {
			*pending = append(*pending, s.recordDropRanges(lost, n, ReasonCorrupt, now,
				fmt.Sprintf("%s; these seqs were issued and not acknowledged by every uplink", what)))
		}
	}
	ev := edge.Event{Type: edge.EventSystem, State: edge.StateBufferRecreated, Subject: "buffer", TS: now}
	ev.Message = fmt.Sprintf("%s; seqs continue above %d", what, top)
	if top > issued {
		r := edge.SeqRange{First: issued + 1, Last: top}
		ev.Ranges, ev.Count = []edge.SeqRange{r}, r.Count()
		ev.Message += fmt.Sprintf("; seqs %s were reserved by the seq ceiling: not issued, or issued after the low-water mark was last written (every 5 s) and lost with the database", r)
	}
	*pending = append(*pending, &edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{ev}})
	s.last = max(s.last, top)
	if top > 0 {
		// What earlier runs issued, but the salvaged; this run's are still
		// to be sent.
		for _, r := range have.Missing(1, top) {
			s.gone(r.First, r.Last)
		}
	}
	s.skipTo = 0 // named above
	s.dirty = true
}
