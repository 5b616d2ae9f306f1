package buffer

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hazwatch/edgecollector/edge"
)

// Eviction and drop policy: size caps, retention age, corrupt records, and
// the periodic work that writes acknowledgements and leaves a degraded
// state.
func (s *Badger) degrade(why string) {
	if s.degraded == "" || s.degraded == degradedOpening {
		s.log.Error("buffer is not durable: messages are held in memory until the disk is usable", "reason", why, "memory_queue", s.opts.MemoryQueue)
	}
	s.degraded = why
	select {
	case s.retryC <- struct{}{}:
	default:
	}
}

// enforce applies the size caps: it evicts messages every uplink has
// acknowledged, oldest first, then drops readings, then events, down to 95 %
// of the cap, and appends a drop report.
func (s *Badger) enforce() {
	over := func(target int64) func(int64, int) bool {
		return func(freed int64, n int) bool {
			return (s.opts.MaxBytes > 0 && s.bytes-freed > target) ||
				(s.opts.MaxMessages > 0 && s.count-uint64(n) > uint64(s.opts.MaxMessages))
		}
	}
	if !over(s.opts.MaxBytes)(0, 0) {
		return
	}
	// Down to 95 % (and one message under a message cap, for the report),
	// so that a report does not follow every append.
	msgCap := s.opts.MaxMessages
	if msgCap > 0 {
		s.opts.MaxMessages = max(1, min(msgCap-1, msgCap*95/100))
	}
	more := over(s.opts.MaxBytes * 95 / 100)
	var dropped []uint64
	s.deleteWhere(func(seq uint64, _ byte) (bool, bool) { return s.ackedByAll(seq), false }, more, nil)
	// Readings, then earlier drop reports (the new report carries their
	// ranges, so nothing goes unnamed and reports never fill the buffer),
	// then events.
	for _, c := range dropOrder {
		if !more(0, 0) {
			break
		}
		s.deleteWhere(func(_ uint64, cl byte) (bool, bool) { return cl == c, false }, more, &dropped)
	}
	s.opts.MaxMessages = msgCap
	s.reportDrops(dropped, ReasonCap, "buffer size cap")
}

// reportDrops names dropped seqs. They become "gone" (acknowledged
// everywhere) in the same commit as the report, so no crash can leave them
// unnamed: a crash before it leaves a gap that the next open names.
func (s *Badger) reportDrops(dropped []uint64, reason, detail string) {
	if len(dropped) == 0 {
		return
	}
	sort.Slice(dropped, func(i, j int) bool { return dropped[i] < dropped[j] })
	rs := rangesOf(dropped)
	for _, r := range rs {
		s.gone(r.First, r.Last)
	}
	if len(s.carry) > 0 {
		// Earlier reports dropped for room: their ranges go on in this one.
		var all ackSet
		for _, r := range append(rs, s.carry...) {
			all.AddRange(r.First, r.Last)
		}
		detail += fmt.Sprintf("; it also names the ranges of %d earlier reports that were removed for room", len(s.carry))
		s.bookDrop(nil, uint64(len(dropped)))
		rs = all.r
		s.carry = nil
	} else {
		s.bookDrop(nil, uint64(len(dropped)))
	}
	var total uint64
	for _, r := range rs {
		total += r.Count()
	}
	ev := DropEvent(rs, total, reason, s.opts.now())
	ev.Events[0].Message += "; " + detail
	s.ranges = append(s.ranges, rangesOf(dropped)...)
	if n := len(s.ranges); n > keepDropRanges {
		s.ranges = append([]edge.SeqRange(nil), s.ranges[n-keepDropRanges:]...)
	}
	s.log.Warn("buffer dropped messages that were not acknowledged", "count", len(dropped), "reason", reason, "detail", ev.Events[0].Message)
	s.dirty = true
	if err := s.ensureCeiling(1); err != nil {
		s.degrade(fmt.Sprintf("write seq ceiling: %v", err))
	}
	ev.Seq = s.nextSeq()
	if _, err := s.write([]*edge.Message{ev}); err != nil {
		s.degrade(fmt.Sprintf("write: %v", err))
		s.mem.add(ev, true)
		s.recordMemorySeq()
	}
}

// deleteWhere deletes stored messages oldest first. pick says, by seq and
// drop class, whether to take a message and whether to stop the scan there;
// more says, given the bytes and messages taken so far, whether to go on.
// Unacknowledged messages taken are added to dropped when it is given
// (the caller reports them); without it pick must take acknowledged
// messages only. The acknowledgement sets are written with the deletions,
// so an eviction never looks like a loss after a crash.
func (s *Badger) deleteWhere(pick func(seq uint64, class byte) (take, stop bool), more func(freed int64, n int) bool, dropped *[]uint64) {
	type victim struct {
		seq  uint64
		size int64
	}
	for more(0, 0) {
		var batch []victim
		var freed int64
		stopped := false
		err := s.db.View(func(txn *badger.Txn) error {
			iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
			defer iter.Close()
			for iter.Rewind(); iter.Valid() && len(batch) < 1000; iter.Next() {
				it := iter.Item()
				seq := binary.BigEndian.Uint64(it.Key()[1:])
				take, stop := pick(seq, it.UserMeta())
				if stop {
					stopped = true
					break
				}
				if !take {
					continue
				}
				size := int64(len(it.Key())) + it.ValueSize()
				if dropped != nil && it.UserMeta() == 2 && !s.ackedByAll(seq) {
					// A drop report: the next report carries its ranges.
					it.Value(func(v []byte) error {
						if m, err := DecodeRecord(v, seq, nil); err == nil && isDropEvent(m) {
							s.carry = append(s.carry, m.Events[0].Ranges...)
						}
						return nil
					})
				}
				batch = append(batch, victim{seq, size})
				freed += size
				if !more(freed, len(batch)) {
					break
				}
			}
			return nil
		})
		if err != nil {
			s.log.Error("buffer eviction scan failed", "err", err)
			return
		}
		if len(batch) == 0 {
			return
		}
		var gone []uint64
		for _, v := range batch {
			if s.ackedByAll(v.seq) {
				gone = append(gone, v.seq)
			} else if dropped != nil {
				*dropped = append(*dropped, v.seq)
			}
		}
		for _, r := range rangesOf(gone) {
			s.gone(r.First, r.Last)
		}
		err = s.db.Update(func(txn *badger.Txn) error {
			for _, v := range batch {
				if err := txn.Delete(msgKey(v.seq)); err != nil {
					return err
				}
			}
			return s.setAcks(txn)
		})
		if err != nil {
			s.log.Error("buffer eviction failed", "err", err)
			s.dirty = true
			return
		}
		s.checkCompaction()
		s.recent = s.recent[:0] // deleted messages must not be served from it
		for _, v := range batch {
			s.bytes -= v.size
			s.count--
		}
		if stopped {
			return
		}
	}
}

// dropCorrupt removes records that cannot be decoded and reports them.
func (s *Badger) dropCorrupt(seqs []uint64) {
	s.log.Error("buffer records cannot be decoded; dropping them", "seqs", fmt.Sprint(seqs))
	picked := map[uint64]bool{}
	for _, q := range seqs {
		picked[q] = true
	}
	var dropped []uint64
	s.deleteWhere(func(seq uint64, _ byte) (bool, bool) { return picked[seq], seq > seqs[len(seqs)-1] },
		func(_ int64, n int) bool { return len(dropped)+n < len(seqs) }, &dropped)
	s.reportDrops(dropped, ReasonCorrupt, "records that fail their checksum or cannot be decoded")
}

// maintain runs the periodic work: writing acknowledgements that no append
// carried, the retention age, value-log GC, giving mapped pages back, and
// recovery from a degraded state (compaction has a goroutine of its own).
// Each wake-up of an idle collector costs about as much CPU as polling a
// few hundred points (docs/performance.md), so its most frequent tick is
// flushEvery.
func (s *Badger) maintain(ctx context.Context) {
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	gc := time.NewTicker(s.opts.GCInterval)
	defer gc.Stop()
	retry := time.NewTicker(s.opts.RetryInterval)
	defer retry.Stop()
	s.mu.Lock()
	if s.degraded == "" {
		retry.Stop() // until degrade says otherwise
	}
	s.mu.Unlock()
	retention := time.NewTicker(s.retentionEvery())
	defer retention.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.flushC:
			flush.Reset(flushEvery)
			s.flushTick()
		case <-flush.C:
			s.flushTick()
		case <-retention.C:
			s.mu.Lock()
			s.applyRetention()
			s.mu.Unlock()
		case <-gc.C:
			s.runGC()
			s.mu.Lock()
			s.checkCompaction()
			s.mu.Unlock()
		case <-s.retryC:
			retry.Reset(s.opts.RetryInterval)
		case <-retry.C:
			s.mu.Lock()
			s.recover(ctx)
			if s.degraded == "" {
				retry.Stop()
			}
			s.mu.Unlock()
		}
	}
}

// flushTick is maintain's work every flushEvery: the acknowledgements no
// append carried, the low-water mark when it changed, and the page-out.
func (s *Badger) flushTick() {
	s.mu.Lock()
	s.flushedAt = time.Now()
	if !s.appendedSinceFlush {
		// No append carried them since the last tick.
		s.flushAcks()
	}
	s.appendedSinceFlush = false
	if s.db != nil && s.degraded == "" {
		s.writeMarks() // when it changed
	}
	pageOut := s.written-s.pagedOut >= pageOutEvery
	if pageOut {
		s.pagedOut = s.written
	}
	s.mu.Unlock()
	if pageOut {
		s.pageOut()
	}
}

// flushEarly: an append this close to the next flush tick runs it at once,
// in the append's wake-up; with appends at least every 3 s, maintain's
// timer never fires (an idle wake-up costs about as much CPU as polling a
// few hundred points, docs/performance.md).
const flushEarly = 2 * time.Second

// flushEvery is how often acknowledgements that no append carried are
// written (every append writes them in its own commit), the low-water mark
// file is written (when it changed) and the pages badger mapped are given
// back. An acknowledgement lost in a crash makes its message go out again,
// marked resend; it is never a loss. The mark matters only when the
// database itself is lost: written every second it was a tenth of the
// collector's CPU at 1,000 points/s (an fsync and the wake-ups around it),
// and a mark up to 5 s old makes nameLost call the seqs issued since "not
// issued or issued after the last mark" (docs/buffer.md).
const flushEvery = 5 * time.Second

// pageOutEvery is how many bytes are written between two page-outs.
const pageOutEvery = 1 << 20

func (s *Badger) flushAcks() {
	if !s.dirty || s.db == nil || s.degraded != "" {
		return
	}
	if err := s.db.Update(s.setAcks); err != nil {
		s.log.Error("buffer: writing acknowledgements failed", "err", err)
		return
	}
	s.checkCompaction()
	s.dirty = false
	s.writeMarks()
}

// writeMarks writes the low-water mark file when it changed.
func (s *Badger) writeMarks() {
	m := marks{low: s.last + 1, last: s.last}
	for _, a := range s.acks {
		m.low = min(m.low, a.NextMissing(1))
	}
	if m == s.marks {
		return
	}
	if err := writeMarks(s.opts.Dir, m); err != nil {
		s.log.Error("buffer: writing the low-water mark failed", "err", err)
		return
	}
	s.marks = m
}

// applyRetention removes messages older than the retention age; those not
// acknowledged by every uplink are drops.
func (s *Badger) applyRetention() {
	if s.opts.Retention <= 0 || s.db == nil || s.degraded != "" {
		return
	}
	cut := s.opts.now().Add(-s.opts.Retention).Unix() / 60
	var lastOld uint64
	var oldBuckets [][]byte
	s.db.View(func(txn *badger.Txn) error {
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pBucket}})
		defer iter.Close()
		for iter.Rewind(); iter.Valid(); iter.Next() {
			it := iter.Item()
			if bucketMinute(it.Key()) >= cut {
				break
			}
			if v, err := it.ValueCopy(nil); err == nil && len(v) == 16 {
				lastOld = max(lastOld, binary.BigEndian.Uint64(v[8:]))
			}
			oldBuckets = append(oldBuckets, it.KeyCopy(nil))
		}
		return nil
	})
	if lastOld == 0 {
		return
	}
	var dropped []uint64
	s.deleteWhere(func(seq uint64, _ byte) (bool, bool) { return seq <= lastOld, seq > lastOld },
		func(int64, int) bool { return true }, &dropped)
	wb := s.db.NewWriteBatch()
	for _, k := range oldBuckets {
		wb.Delete(k)
	}
	wb.Flush()
	for m := range s.buckets {
		if m < cut {
			delete(s.buckets, m)
		}
	}
	s.reportDrops(dropped, ReasonAge, "older than the retention age")
}

func (s *Badger) runGC() {
	s.mu.Lock()
	db := s.db
	s.mu.Unlock()
	if db == nil {
		return
	}
	for i := 0; i < 10; i++ {
		if err := db.RunValueLogGC(0.5); err != nil {
			return
		}
	}
}

// recover leaves the degraded state once the disk has room again, moving the
// memory queue into the database.
func (s *Badger) recover(ctx context.Context) {
	if s.degraded == "" || s.closed {
		return
	}
	free, err := s.opts.FreeSpace(s.opts.Dir)
	if err != nil || free < s.opts.MinFree+s.opts.MinFree/4 {
		return
	}
	if s.db == nil {
		var pending []*edge.Message
		last := s.last
		if err := s.openDB(&pending); err != nil || s.db == nil {
			return
		}
		// Seqs between the database's last and ours were never issued.
		s.last = max(s.last, last)
		for _, m := range pending {
			m.Seq = s.nextSeq()
			s.mem.add(m, true)
		}
	}
	if err := s.ensureCeiling(0); err != nil {
		return
	}
	s.dirty = true // the queue may have marked seqs gone
	queued := s.mem.take()
	if len(queued) > 0 {
		if n, err := s.write(queued); err != nil {
			for _, m := range queued[n:] {
				s.mem.add(m, true)
			}
			s.recordMemorySeq() // the pending report may have got its seq
			s.log.Error("buffer still cannot write", "err", err)
			return
		}
	}
	s.log.Info("buffer is durable again", "moved_from_memory", len(queued))
	s.degraded = ""
	s.enforce()
	s.writeMarks()
	s.signalRescan()
}
