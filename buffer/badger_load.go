package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/hazwatch/edgecollector/edge"
)

// load reads the counters and ack sets of an opened database and accounts
// for every seq below its last: stored, acknowledged by every uplink (or
// named dropped earlier, which marks it so), or lost. Losses found here are
// named; reports of them are added to pending.
func (s *Badger) load(pending *[]*edge.Message) error {
	var dbLast, maxStored uint64
	var gaps []edge.SeqRange
	found := false // anything at all in the database
	err := s.db.View(func(txn *badger.Txn) error {
		if it, err := txn.Get([]byte(kLast)); err == nil {
			v, _ := it.ValueCopy(nil)
			if len(v) == 8 {
				dbLast = binary.BigEndian.Uint64(v)
				found = true
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("buffer: read last seq: %w", err)
		}
		if it, err := txn.Get([]byte(kDrops)); err == nil {
			v, _ := it.ValueCopy(nil)
			var a ackSet
			if len(v) >= 8 && a.unmarshal(v[8:]) == nil {
				s.dropped = binary.BigEndian.Uint64(v)
				s.ranges = a.r
			}
		}
		for _, u := range s.uplinks {
			it, err := txn.Get(append([]byte{pAck}, u...))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("buffer: read acks of %s: %w", u, err)
			}
			v, _ := it.ValueCopy(nil)
			var a ackSet
			if err := a.unmarshal(v); err != nil {
				s.log.Error("acknowledgements unreadable; this uplink will be sent everything again", "uplink", u, "err", err)
				continue
			}
			for _, r := range a.r {
				s.acks[u].AddRange(r.First, r.Last)
			}
		}
		// Count messages and bytes. A gap between stored keys is a message
		// that is gone: evicted once every uplink had it, or dropped (both
		// leave it in every ack set), or lost.
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
		defer iter.Close()
		var prev uint64
		for iter.Rewind(); iter.Valid(); iter.Next() {
			it := iter.Item()
			seq := binary.BigEndian.Uint64(it.Key()[1:])
			if seq > prev+1 {
				gaps = append(gaps, edge.SeqRange{First: prev + 1, Last: seq - 1})
			}
			prev = seq
			s.count++
			s.bytes += int64(len(it.Key())) + it.ValueSize()
			found = true
		}
		maxStored = prev
		return nil
	})
	if err != nil {
		return err
	}
	memLast := s.before.memLast
	if !found && s.starting && (s.ceiling > 0 || s.marks.last > 0 || memLast > 0) {
		// An empty database where one stood (db/ deleted, or badger started
		// a new one): never restart seqs at 1.
		s.nameLost("the buffer database is missing or empty although seqs were issued before", pending, nil)
		return nil
	}
	top := max(dbLast, maxStored)
	s.last = max(s.last, top)
	if top > maxStored {
		gaps = append(gaps, edge.SeqRange{First: maxStored + 1, Last: top})
	}
	// Seqs the last written mark says were issued, above all the database
	// knows (and not issued in memory): its newest part is lost.
	damaged := maxStored > dbLast
	if s.starting && s.marks.last > max(top, memLast) {
		gaps = append(gaps, edge.SeqRange{First: top + 1, Last: s.marks.last})
		s.last = max(s.last, s.marks.last)
		damaged = true
	}
	var lost []edge.SeqRange
	var nLost uint64
	for _, g := range gaps {
		for _, r := range s.unacked(g.First, g.Last) {
			lost = append(lost, r)
			nLost += r.Count()
		}
		s.gone(g.First, g.Last)
	}
	now := s.opts.now()
	if len(lost) > 0 {
		damaged = true
		s.log.Error("buffer database lost messages that were not acknowledged; naming them", "count", nLost, "ranges", fmt.Sprint(lost))
		*pending = append(*pending, s.recordDropRanges(lost, nLost, ReasonCorrupt, now,
			"messages missing from the buffer database (damaged storage), not acknowledged by every uplink"))
		s.dirty = true
	}
	if s.starting && memLast > top {
		// Messages held only in memory (disk full) were lost when the
		// collector stopped: their seqs are reported, never reused.
		r := edge.SeqRange{First: top + 1, Last: memLast}
		s.gone(r.First, r.Last)
		s.last = max(s.last, memLast)
		*pending = append(*pending, s.recordDropRanges([]edge.SeqRange{r}, r.Count(), ReasonMemory, now,
			"held in memory while the disk was full, lost when the collector stopped"))
		s.dirty = true
	}
	if damaged && s.ceiling > s.last {
		// The newest seqs issued may be gone with the damaged part: continue
		// above the ceiling, which no seq ever passed.
		r := edge.SeqRange{First: s.last + 1, Last: s.ceiling}
		*pending = append(*pending, &edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{{
			Type: edge.EventSystem, State: edge.StateBufferRecreated, Subject: "buffer", TS: now, Ranges: []edge.SeqRange{r}, Count: r.Count(),
			Message: fmt.Sprintf("the buffer database is damaged; seqs continue above the reserved ceiling %d, so seqs %s were not issued (or, issued in the moment before the damage, are lost with it)", s.ceiling, r),
		}}})
		s.last = s.ceiling
		s.gone(r.First, r.Last)
		s.dirty = true
	}
	if s.skipTo > top {
		// Started while the disk was full, above the ceiling: the seqs
		// between were never issued.
		r := edge.SeqRange{First: top + 1, Last: s.skipTo}
		s.gone(r.First, r.Last)
		*pending = append(*pending, &edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{{
			Type: edge.EventSystem, State: edge.StateBufferRecreated, Subject: "buffer", TS: now,
			Ranges: []edge.SeqRange{r}, Count: r.Count(),
			Message: fmt.Sprintf("the collector started while the disk was too full to open the buffer database; seqs continued above the reserved ceiling, so seqs %s were never issued (those a run before held only in memory, on a full disk, were lost with it)", r),
		}}})
		s.skipTo = 0
	}
	return nil
}

// unacked returns the parts of [first, last] that some uplink has not
// acknowledged.
func (s *Badger) unacked(first, last uint64) []edge.SeqRange {
	var u ackSet
	for _, a := range s.acks {
		for _, r := range a.Missing(first, last) {
			u.AddRange(r.First, r.Last)
		}
	}
	return u.r
}
