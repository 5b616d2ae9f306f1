package buffer

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hazwatch/edgecollector/edge"
)

// Reads: what uplinks have not had acknowledged, history by time, and the
// figures for status.

// Unacked returns up to max stored messages with from <= seq < to that
// uplink has not acknowledged. Every record's checksum is verified; a record
// that fails is dropped and named (buffer_dropped, corrupt).
func (s *Badger) Unacked(uplink string, from, to uint64, max int) ([]*edge.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.ackSet(uplink)
	if err != nil {
		return nil, err
	}
	if out, ok := s.fromRecent(a, max64(from, 1), to, max); ok {
		return out, nil
	}
	var out []*edge.Message
	if s.db != nil {
		var bad []uint64
		err := s.db.View(func(txn *badger.Txn) error {
			iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}, PrefetchValues: false})
			defer iter.Close()
			seq := a.NextMissing(max64(from, 1))
			for iter.Seek(msgKey(seq)); iter.Valid() && len(out) < max; {
				it := iter.Item()
				seq = binary.BigEndian.Uint64(it.Key()[1:])
				if to != 0 && seq >= to {
					break
				}
				if a.Contains(seq) {
					iter.Seek(msgKey(a.NextMissing(seq)))
					continue
				}
				var m *edge.Message
				err := it.Value(func(v []byte) (err error) {
					m, err = DecodeRecord(v, seq, s.opts.Location)
					return err
				})
				if err != nil {
					bad = append(bad, seq)
				} else {
					out = append(out, m)
				}
				iter.Next()
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("buffer: read unacknowledged: %w", err)
		}
		if len(bad) > 0 {
			s.dropCorrupt(bad)
		}
	}
	if len(out) < max && s.mem.Len() > 0 {
		before := s.last
		more, _ := s.mem.Unacked(uplink, from, to, max-len(out))
		if s.last != before {
			// The pending drop report got its seq, issued in memory.
			s.recordMemorySeq()
		}
		out = append(out, more...)
		sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	}
	return out, nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
func (s *Badger) Ack(uplink string, seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.ackSet(uplink)
	if err != nil {
		return err
	}
	for _, q := range seqs {
		if q > 0 && q <= s.last {
			a.Add(q)
		}
	}
	s.dirty = true
	return nil
}

func (s *Badger) Between(from, to time.Time, kind edge.Kind, fn func(*edge.Message) bool) error {
	s.mu.Lock()
	if s.db == nil {
		s.mu.Unlock()
		return s.mem.Between(from, to, kind, fn)
	}
	// Buckets of a minute give the seq span; a minute of slack either side
	// covers messages created at a bucket's edge.
	var lo, hi uint64
	err := s.db.View(func(txn *badger.Txn) error {
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pBucket}})
		defer iter.Close()
		for iter.Seek(bucketKey(from.Unix()/60 - 1)); iter.Valid(); iter.Next() {
			it := iter.Item()
			if bucketMinute(it.Key()) > to.Unix()/60+1 {
				break
			}
			v, err := it.ValueCopy(nil)
			if err != nil || len(v) != 16 {
				continue
			}
			f, l := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
			if lo == 0 || f < lo {
				lo = f
			}
			hi = max(hi, l)
		}
		return nil
	})
	s.mu.Unlock()
	if err != nil || lo == 0 {
		return err
	}
	for seq := lo; seq <= hi; {
		batch, next, err := s.rangeMsgs(seq, hi, 256, kind)
		if err != nil {
			return err
		}
		for _, m := range batch {
			if !m.Created.Before(from) && m.Created.Before(to) && !fn(m) {
				return nil
			}
		}
		if next == 0 {
			break
		}
		seq = next
	}
	return nil
}

// batchBytes bounds the records one rangeMsgs decodes at once (their
// decoded form is a few times larger).
const batchBytes = 2 << 20

// rangeMsgs decodes up to n stored messages of kind (0: any) with from <=
// seq <= to; records of other kinds are skipped undecoded (up to 16 times
// n of them per call). next is the seq to go on from (0: to is reached).
func (s *Badger) rangeMsgs(from, to uint64, n int, kind edge.Kind) (out []*edge.Message, next uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil, 0, nil
	}
	err = s.db.View(func(txn *badger.Txn) error {
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
		defer iter.Close()
		looked, size := 0, 0
		for iter.Seek(msgKey(from)); iter.Valid(); iter.Next() {
			seq := binary.BigEndian.Uint64(iter.Item().Key()[1:])
			if seq > to {
				return nil
			}
			if len(out) >= n || looked >= 16*n || size >= batchBytes {
				next = seq
				return nil
			}
			looked++
			err := iter.Item().Value(func(v []byte) error {
				if kind != 0 && RecordKind(v) != kind {
					return nil
				}
				m, err := DecodeRecord(v, seq, s.opts.Location)
				if err == nil {
					out = append(out, m)
					size += len(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, next, err
}

func (s *Badger) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *Badger) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Durable: s.degraded == "" && s.db != nil, Degraded: s.degraded, Messages: s.count + uint64(s.mem.Len()),
		Bytes: s.bytes, LastSeq: s.last, Uplinks: map[string]UplinkStats{}, Dropped: s.dropped,
		DroppedRanges: append([]edge.SeqRange(nil), s.ranges...), MemoryQueued: s.mem.Len()}
	if m := s.firstStored(1); m != nil {
		st.Oldest = m.Created
	}
	for u, a := range s.acks {
		us := UplinkStats{Depth: s.last - a.CountIn(1, s.last)}
		if us.Depth > 0 {
			if m := s.firstStored(a.NextMissing(1)); m != nil {
				us.OldestUnacked = m.Created
			}
		}
		st.Uplinks[u] = us
	}
	return st
}

// firstStored returns the first stored message with seq >= from.
func (s *Badger) firstStored(from uint64) *edge.Message {
	if s.db != nil {
		var m *edge.Message
		s.db.View(func(txn *badger.Txn) error {
			iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
			defer iter.Close()
			iter.Seek(msgKey(from))
			if iter.Valid() {
				seq := binary.BigEndian.Uint64(iter.Item().Key()[1:])
				iter.Item().Value(func(v []byte) error {
					m, _ = DecodeRecord(v, seq, s.opts.Location)
					return nil
				})
			}
			return nil
		})
		if m != nil {
			return m
		}
	}
	if ms, _ := s.mem.Unacked(s.uplinksOrEmpty(), from, 0, 1); len(ms) > 0 {
		return ms[0]
	}
	return nil
}

func (s *Badger) uplinksOrEmpty() string {
	if len(s.uplinks) > 0 {
		return s.uplinks[0]
	}
	return ""
}
