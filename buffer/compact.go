package buffer

import (
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
// NumLevelZeroTables, the others by size); if one is over, the maintenance
// goroutine compacts with DB.Flatten, which moves every level down into
// one. Writes never wait for it unless level 0 reaches
// NumLevelZeroTablesStall first (five memtables' worth of writes between
// two commits: not possible, a commit is at most 15 % of a memtable); a
// commit during a compaction only adds to level 0, which the same Flatten
// picks up before it returns.
//
// The trade: Flatten rewrites the tables a level-0 table overlaps in the
// bottom level, and a level-0 table spans the whole key space (every
// commit writes the last seq, the minute index and the acknowledgement
// sets), so each compaction rewrites the LSM, not a slice of it. The LSM
// is keys and value pointers (small records, under 1 KB, are kept in it
// whole), a few MB at the reference load; TestCompactionKeepsLevelZeroLow
// measures the bytes written.

// compactDue says whether some level of db is over its target.
func compactDue(db *badger.DB) bool {
	for _, l := range db.Levels() {
		// Score is set for the levels badger would compact: level 0 by
		// its table count, the others (but the last) by their size.
		// Flatten compacts a score over 1 (at exactly 1 it has nothing
		// to do: level 0 is compacted at NumLevelZeroTables+1 tables).
		if l.Score > 1 {
			return true
		}
	}
	return false
}

// checkCompaction is called after a commit, with mu held: it wakes the
// maintenance goroutine when a level is over its target. It looks after
// every commit: a look costs a few microseconds, a synced commit a
// millisecond or more, and appends at full speed fill a memtable a second.
func (s *Badger) checkCompaction() {
	if s.db == nil || !compactDue(s.db) {
		return
	}
	select {
	case s.compactC <- struct{}{}:
	default:
	}
}

// compact runs badger's compaction until no level is over its target. It
// runs in the maintenance goroutine, without mu: appends go on meanwhile,
// and an append stalled on a full level 0 (holding mu) is released by it.
// s.db is read without mu: only this goroutine (settle, recover) and
// Close, after this goroutine has ended, ever set it.
func (s *Badger) compact() {
	db := s.db
	if db == nil || !s.durable.Load() || !compactDue(db) {
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
