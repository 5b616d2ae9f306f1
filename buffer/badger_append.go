package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hazwatch/edgecollector/edge"
)

func (s *Badger) nextSeq() uint64 {
	s.last++
	return s.last
}

// ensureCeiling keeps every seq about to be assigned below the ceiling file.
func (s *Badger) ensureCeiling(n int) error {
	if s.last+uint64(n) < s.ceiling {
		return nil
	}
	c := s.last + uint64(n) + ceilingStep
	if err := writeCeiling(s.opts.Dir, c); err != nil {
		return err
	}
	s.ceiling = c
	return nil
}

// Append assigns seqs and writes msgs, synced. Until the open has settled
// it waits, so the messages wait in the caller's queue without a seq.
func (s *Badger) Append(ctx context.Context, msgs ...*edge.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	select {
	case <-s.opened:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	err := s.appendLocked(msgs)
	s.mu.Unlock()
	s.signal()
	return err
}

func (s *Badger) appendLocked(msgs []*edge.Message) error {
	if s.closed {
		return ErrClosed
	}
	if err := s.ensureCeiling(len(msgs)); err != nil {
		// The ceiling file is on the same disk: most likely it is full.
		s.degrade(fmt.Sprintf("write seq ceiling: %v", err))
	}
	if s.db != nil && s.degraded == "" && s.freeCheckDue() {
		if free, err := s.opts.FreeSpace(s.opts.Dir); err == nil && free < s.opts.MinFree {
			s.degrade(fmt.Sprintf("disk full: %d bytes free, %d needed", free, s.opts.MinFree))
		}
	}
	if s.db == nil || s.degraded != "" {
		return s.toMemory(msgs)
	}

	for _, m := range msgs {
		m.Seq = s.nextSeq()
	}
	n, err := s.write(msgs)
	s.remember(msgs[:n])
	if err != nil {
		// The seqs are issued: what was not committed keeps them in memory.
		s.degrade(fmt.Sprintf("write: %v", err))
		return s.toMemory(msgs[n:])
	}
	s.enforce()
	if now := s.opts.now(); now.Sub(s.retained) >= s.retentionEvery() || now.Before(s.retained) {
		s.retained = now
		s.applyRetention()
	}
	// The commit carried the acknowledgements; the low-water mark is
	// written on the maintenance tick (flushEvery), which this append runs
	// when it is near.
	if time.Since(s.flushedAt) >= flushEvery-flushEarly {
		select {
		case s.flushC <- struct{}{}:
		default:
		}
	}
	return nil
}

// Free space is checked before an append when FreeCheckInterval has passed
// or a MiB has been written since the last check: min_free (at least
// 48 MiB) leaves room for far more than that.
const freeCheckBytes = 1 << 20

func (s *Badger) freeCheckDue() bool {
	now := time.Now()
	if now.Sub(s.freeChecked) < s.opts.FreeCheckInterval && s.bytes-s.freeCheckedAt < freeCheckBytes && s.bytes >= s.freeCheckedAt {
		return false
	}
	s.freeChecked, s.freeCheckedAt = now, s.bytes
	return true
}

// retentionEvery is how often the retention age is applied.
func (s *Badger) retentionEvery() time.Duration {
	return max(time.Second, min(time.Minute, s.opts.Retention/10))
}

// recentMax bounds the recent-message cache.
const recentMax = 64

// remember adds durably written messages to the recent cache.
func (s *Badger) remember(msgs []*edge.Message) {
	for _, m := range msgs {
		if n := len(s.recent); n > 0 && s.recent[n-1].Seq+1 != m.Seq {
			s.recent = s.recent[:0]
		}
		s.recent = append(s.recent, m)
	}
	if n := len(s.recent); n > recentMax {
		s.recent = append(s.recent[:0], s.recent[n-recentMax:]...)
	}
}

// fromRecent serves Unacked from the cache when it covers from.
func (s *Badger) fromRecent(a *ackSet, from, to uint64, max int) ([]*edge.Message, bool) {
	if len(s.recent) == 0 || from < s.recent[0].Seq || s.mem.Len() > 0 {
		return nil, false
	}
	var out []*edge.Message
	for _, m := range s.recent[from-s.recent[0].Seq:] {
		if len(out) >= max || (to != 0 && m.Seq >= to) {
			break
		}
		if !a.Contains(m.Seq) {
			out = append(out, m)
		}
	}
	return out, true
}

// toMemory keeps msgs in the memory queue; those without a seq get one,
// and the last seq issued is recorded outside the database.
func (s *Badger) toMemory(msgs []*edge.Message) error {
	for _, m := range msgs {
		s.mem.add(m, m.Seq != 0)
	}
	s.mem.enforce()
	s.dirty = true // drops from the queue mark seqs gone in the shared ack sets
	s.recordMemorySeq()
	return fmt.Errorf("%w: %d messages held in memory (%s)", ErrNotDurable, len(msgs), s.degraded)
}

// write stores msgs (with seqs assigned) in as few transactions as badger
// allows, each synced. It returns how many of msgs were committed.
func (s *Badger) write(msgs []*edge.Message) (int, error) {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	var added int64
	var n uint64
	committed := 0
	commit := func(lastSeq uint64) error {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], lastSeq)
		if err := txn.Set([]byte(kLast), b[:]); err != nil {
			return err
		}
		if s.dirty {
			if err := s.setAcks(txn); err != nil {
				return err
			}
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		s.checkCompaction()
		s.dirty = false
		s.count += n
		s.bytes += added
		s.written += added
		s.appendedSinceFlush = true
		committed += int(n)
		n, added = 0, 0
		return nil
	}
	for i, m := range msgs {
		s.scratch = EncodeRecord(s.scratch[:0], m)
		val := append([]byte(nil), s.scratch...)
		e := badger.NewEntry(msgKey(m.Seq), val).WithMeta(byte(class(m.Kind, isDropEvent(m))))
		minute := m.Created.Unix() / 60
		err := txn.SetEntry(e)
		if err == nil {
			err = s.setBucket(txn, minute, m.Seq)
		}
		if errors.Is(err, badger.ErrTxnTooBig) && i > 0 {
			if err := commit(msgs[i-1].Seq); err != nil {
				return committed, err
			}
			txn = s.db.NewTransaction(true)
			if err = txn.SetEntry(e); err == nil {
				err = s.setBucket(txn, minute, m.Seq)
			}
		}
		if err != nil {
			return committed, err
		}
		n++
		added += int64(len(e.Key) + len(val))
	}
	return committed, commit(msgs[len(msgs)-1].Seq)
}

func (s *Badger) setBucket(txn *badger.Txn, minute int64, seq uint64) error {
	b, ok := s.buckets[minute]
	if !ok {
		if it, err := txn.Get(bucketKey(minute)); err == nil {
			if v, _ := it.ValueCopy(nil); len(v) == 16 {
				b = [2]uint64{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}
				ok = true
			}
		}
	}
	if !ok {
		b = [2]uint64{seq, seq}
	}
	b[0], b[1] = min(b[0], seq), max(b[1], seq)
	if len(s.buckets) > 4 {
		clear(s.buckets)
	}
	s.buckets[minute] = b
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, b[0])
	binary.BigEndian.PutUint64(v[8:], b[1])
	return txn.Set(bucketKey(minute), v)
}

func (s *Badger) setAcks(txn *badger.Txn) error {
	for _, u := range s.uplinks {
		if err := txn.Set(append([]byte{pAck}, u...), s.acks[u].marshal()); err != nil {
			return err
		}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s.dropped)
	return txn.Set([]byte(kDrops), append(b[:], (&ackSet{r: s.ranges}).marshal()...))
}

// recordMemorySeq records, outside the database, the last seq issued while
// messages are held in memory only.
func (s *Badger) recordMemorySeq() {
	if err := writeSeqFile(filepath.Join(s.opts.Dir, memorySeqFile), s.last); err != nil {
		s.log.Error("cannot record the seqs issued in memory; a restart could issue them again", "err", err)
	}
}
