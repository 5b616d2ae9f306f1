package buffer

import (
	"context"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Compaction is run by the buffer, not by badger's own compactors.
//
// Badger starts NumCompactors goroutines that each wake every 50 ms,
// whether or not there is anything to compact: 40 wake-ups a second for
// the small profile's two, which on a gateway's CPU (and in the VM this was
// measured on) cost more than polling 20 points every second and sending
// them (docs/performance.md: 6.7 ms of CPU per second for a quiet gateway,
// 1.2 ms without them). The buffer's LSM holds little (records over
// ValueThreshold live in the value log; the LSM holds their keys, the
// minute index and the acknowledgement sets), so it needs compacting only
// when a memtable flush has added level-0 tables, which happens every few
// minutes at the reference load.
//
// So the database is opened with NumCompactors 0, and after each commit
// the buffer asks badger whether a level is over its target (the same
// score badger's compactors use: level 0 by table count against
// NumLevelZeroTables, the others by size); if one is over, a goroutine of
// its own (compactor) compacts with DB.Flatten, which moves every level
// down into one. That goroutine never takes the buffer's lock and runs
// from before the database opens: a commit that badger holds because level
// 0 reached NumLevelZeroTablesStall (a salvage or a large eviction writing
// many memtables' worth under the lock) is released by the compaction its
// own commits asked for. A commit during a compaction only adds to level 0,
// which the same Flatten picks up before it returns.
//
// The trade: Flatten rewrites the tables a level-0 table overlaps in the
// bottom level, and a level-0 table spans the whole key space (every
// commit writes the last seq, the minute index and the acknowledgement
// sets), so each compaction rewrites the LSM, not a slice of it. The LSM
// is keys and value pointers (small records, under 1 KB, are kept in it
// whole), a few MB at the reference load; TestCompactionKeepsLevelZeroLow
// measures the bytes written.

// compactDue says whether some level of db is over its target, and the
// LSM's size.
func compactDue(db *badger.DB) (due bool, size int64) {
	for _, l := range db.Levels() {
		// Score is set for the levels badger would compact: level 0 by
		// its table count, the others (but the last) by their size.
		// Flatten compacts a score over 1 (at exactly 1 it has nothing
		// to do: level 0 is compacted at NumLevelZeroTables+1 tables).
		due = due || l.Score > 1
		size += l.Size
	}
	return due, size
}

// checkCompaction is called after every commit, with mu held: it wakes the
// compactor when a level is over its target. A look costs a few
// microseconds, a synced commit a millisecond or more.
func (s *Badger) checkCompaction() {
	if s.db == nil {
		return
	}
	if due, _ := compactDue(s.db); !due {
		return
	}
	select {
	case s.compactC <- struct{}{}:
	default:
	}
}

// setDB sets the open database (nil: none), with mu held or before the
// store is shared.
func (s *Badger) setDB(db *badger.DB) {
	s.db = db
	s.dbp.Store(db)
}

// closeDB closes a database the store is giving up, once no compaction
// runs on it.
func (s *Badger) closeDB(db *badger.DB) error {
	s.setDB(nil)
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	return db.Close()
}

// compactor compacts when a commit asked for it, until ctx ends.
func (s *Badger) compactor(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.compactC:
			s.compact()
		}
	}
}

// compact runs badger's compaction until no level is over its target,
// without the buffer's lock: appends go on meanwhile. A compaction writes a
// new copy of the LSM before it removes the old one, so it waits while the
// disk lacks that room plus MinFree (badger writes tables through a
// mapping, and dies with SIGBUS on a full disk); appends wait then on a
// full level 0, in the appender's bounded queue, whose drops are named.
func (s *Badger) compact() {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	db := s.dbp.Load()
	if db == nil || db.IsClosed() {
		return
	}
	due, lsm := compactDue(db)
	if !due {
		return
	}
	if free, err := s.opts.FreeSpace(s.opts.Dir); err == nil && free < lsm+s.opts.MinFree {
		s.log.Warn("buffer: compaction waits for disk space", "free", free, "needed", lsm+s.opts.MinFree)
		return
	}
	start := time.Now()
	if err := db.Flatten(1); err != nil {
		s.log.Warn("buffer: compaction failed; retried after the next commit", "err", err)
		return
	}
	s.compactions.Add(1)
	s.log.Debug("buffer: compacted", "took", time.Since(start).Round(time.Millisecond))
}
