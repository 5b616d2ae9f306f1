package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/hazwatch/edgecollector/edge"
)

// BadgerOpts configure the durable store.
type BadgerOpts struct {
	Opts
	// Dir holds the database (Dir/db) and the seq ceiling file.
	Dir string
	// MinFree is the disk space kept free; below it nothing more is written
	// to badger (which dies with SIGBUS on a full disk) and messages wait in
	// the memory queue. It is raised to the profile's floor.
	MinFree int64
	// MemoryQueue bounds the messages held in memory while the database is
	// unusable (default 10000).
	MemoryQueue int
	// Profile is "small" (default) or "default"; see docs/buffer.md.
	Profile string
	// GCInterval is how often the value log is garbage-collected (default 1m).
	GCInterval time.Duration
	// RetryInterval is how often a degraded store retries the disk (5s).
	RetryInterval time.Duration
	Logger        *slog.Logger
	// FreeSpace reports free bytes on the disk holding dir (default statfs);
	// tests inject a fake full disk.
	FreeSpace func(dir string) (int64, error)
	// FreeCheckInterval: free space is checked before an append when this
	// long has passed, or a MiB was written, since the last check (default
	// 1s; negative: before every append).
	FreeCheckInterval time.Duration
}

// Key layout. Seqs and times are big-endian so keys sort in order.
const (
	pMsg    = 'm' // m seq -> record; UserMeta = drop class
	pBucket = 't' // t minute -> first seq, last seq
	pAck    = 'a' // a uplink -> ack set
	kLast   = "n" // last assigned seq
	kDrops  = "d" // dropped count and last ranges
)

const ceilingStep = 10000

func msgKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = pMsg
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func bucketKey(minute int64) []byte {
	k := make([]byte, 9)
	k[0] = pBucket
	binary.BigEndian.PutUint64(k[1:], uint64(minute)^(1<<63))
	return k
}

func bucketMinute(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[1:]) ^ (1 << 63)) }

// Badger is the durable Store on badger v4.
type Badger struct {
	opts BadgerOpts
	log  *slog.Logger

	mu sync.Mutex
	*book
	db       *badger.DB
	last     uint64 // last assigned seq
	ceiling  uint64 // every assigned seq is below it
	count    uint64 // messages in db
	bytes    int64  // their key+value size
	mem      *Memory
	degraded string
	skipTo   uint64              // started without the database: seqs up to here were skipped
	starting bool                // OpenBadger is opening: messages an earlier run held in memory are gone
	dirty    bool                // ack sets changed since written
	buckets  map[int64][2]uint64 // minute -> first, last seq written this session (cache)
	scratch  []byte
	closed   bool
	retained time.Time // when the retention age was last applied
	// freeChecked and freeCheckedAt: when free space was last checked, and
	// the stored bytes then.
	freeChecked   time.Time
	freeCheckedAt int64
	// recent holds the last messages appended (contiguous seqs), so the
	// uplinks' live reads do not go back to the disk for them.
	recent []*edge.Message

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Store = (*Badger)(nil)

// profileFloor is the least MinFree each profile needs: a memtable WAL and a
// value-log file are mapped sparse and filled by writes, and compaction needs
// room for a new table, all of which must fit before badger can hit ENOSPC.
func profileFloor(profile string) int64 {
	if profile == "default" {
		return 512 << 20
	}
	return 48 << 20
}

func badgerOptions(o BadgerOpts, dir string) badger.Options {
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{o.Logger}).
		WithSyncWrites(true).
		WithCompression(options.None).
		WithDetectConflicts(false)
	if o.Profile == "default" {
		return bo.WithValueLogFileSize(128 << 20)
	}
	// The small profile: ~40 MB RSS instead of badger's ~54 MB and 4 GB of
	// address space, which a 32-bit ARM gateway does not have.
	return bo.
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(5).
		WithBaseTableSize(2 << 20).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithValueThreshold(1 << 10)
}

// OpenBadger opens (or creates) the durable buffer in opts.Dir. A database
// that cannot be opened because it is corrupt is moved aside (kept) and a new
// one is started; the skipped seqs are reported by a buffer_recreated event.
// A disk too full to write starts the store degraded: messages wait in memory
// until there is room.
func OpenBadger(ctx context.Context, opts BadgerOpts) (*Badger, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MemoryQueue <= 0 {
		opts.MemoryQueue = 10000
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = time.Minute
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 5 * time.Second
	}
	if opts.FreeSpace == nil {
		opts.FreeSpace = freeSpace
	}
	if opts.FreeCheckInterval == 0 {
		opts.FreeCheckInterval = time.Second
	}
	opts.MinFree = max(opts.MinFree, profileFloor(opts.Profile))
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("buffer: create %s: %w", opts.Dir, err)
	}
	s := &Badger{opts: opts, log: opts.Logger.With("component", "buffer"), book: newBook(opts.Uplinks), buckets: map[int64][2]uint64{}}
	s.mem = newQueue(opts.MemoryQueue, s.book, s.nextSeq)
	var err error
	if s.ceiling, err = readCeiling(opts.Dir); err != nil {
		return nil, err
	}
	var pending []*edge.Message
	s.starting = true
	err = s.openDB(&pending)
	s.starting = false
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, memorySeqFile)); errors.Is(err, os.ErrNotExist) && s.degraded == "" {
		writeSeqFile(filepath.Join(opts.Dir, memorySeqFile), s.last)
	}
	if len(pending) > 0 {
		if err := s.Append(ctx, pending...); err != nil && !errors.Is(err, ErrNotDurable) {
			s.Close()
			return nil, err
		}
	}
	bctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.maintain(bctx)
	return s, nil
}

func (s *Badger) dbDir() string { return filepath.Join(s.opts.Dir, "db") }

// openDB opens the database or falls back; events to append are added to
// pending. Called at open and, while degraded, by the retry loop (with mu
// held).
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
	db, err := badger.Open(badgerOptions(s.opts, s.dbDir()))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return fmt.Errorf("buffer: %s is in use by another collector: %w", s.dbDir(), err)
		}
		aside := fmt.Sprintf("%s.corrupt-%s", s.dbDir(), s.opts.now().Format("20060102T150405"))
		s.log.Error("buffer database cannot be opened; moving it aside and starting a new one", "err", err, "kept_as", aside)
		if rerr := os.Rename(s.dbDir(), aside); rerr != nil {
			return fmt.Errorf("buffer: open %s: %w (and moving it aside failed: %v)", s.dbDir(), err, rerr)
		}
		if db, err = badger.Open(badgerOptions(s.opts, s.dbDir())); err != nil {
			return fmt.Errorf("buffer: create new database %s: %w", s.dbDir(), err)
		}
		s.db = db
		skipped := edge.SeqRange{First: s.ceiling - min(s.ceiling, ceilingStep) + 1, Last: s.ceiling}
		if s.ceiling == 0 {
			skipped = edge.SeqRange{}
		}
		s.last = max(s.last, s.ceiling)
		s.gone(1, s.last)
		now := s.opts.now()
		ev := edge.Event{Type: edge.EventSystem, State: edge.StateBufferRecreated, Subject: "buffer", TS: now,
			Message: fmt.Sprintf("buffer database could not be opened (%v); kept as %s; seqs continue above %d", err, aside, s.last)}
		if skipped.Last > 0 {
			ev.Ranges = []edge.SeqRange{skipped}
			ev.Count = skipped.Count()
			ev.Message += fmt.Sprintf("; seqs %s were not issued by the new database (those issued before the failure are in the kept copy)", skipped)
		}
		*pending = append(*pending, &edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{ev}})
		return nil
	}
	s.db = db
	if err := s.load(pending); err != nil {
		db.Close()
		s.db = nil
		return err
	}
	if err == nil && free < s.opts.MinFree {
		// Opened to know where seqs stand, but nothing is appended to it
		// until there is room.
		s.degrade(fmt.Sprintf("disk full: %d bytes free, %d needed", free, s.opts.MinFree))
	}
	return nil
}

// openFloor is the free space below which the database is not even opened.
const openFloor = 8 << 20

// load reads the counters and ack sets of an opened database; a report of
// seqs skipped while it could not be opened is added to pending.
func (s *Badger) load(pending *[]*edge.Message) error {
	var dbLast uint64
	return s.db.View(func(txn *badger.Txn) error {
		if it, err := txn.Get([]byte(kLast)); err == nil {
			v, _ := it.ValueCopy(nil)
			if len(v) == 8 {
				dbLast = binary.BigEndian.Uint64(v)
				s.last = max(s.last, dbLast)
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
		// Count messages and bytes; seqs below the first stored one and gaps
		// are gone (acknowledged or dropped earlier).
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
		defer iter.Close()
		var prev uint64
		for iter.Rewind(); iter.Valid(); iter.Next() {
			it := iter.Item()
			seq := binary.BigEndian.Uint64(it.Key()[1:])
			if seq > prev+1 {
				s.gone(prev+1, seq-1)
			}
			prev = seq
			s.count++
			s.bytes += int64(len(it.Key())) + it.ValueSize()
		}
		if dbLast > prev {
			s.gone(prev+1, dbLast)
		}
		if ml, err := readSeqFile(filepath.Join(s.opts.Dir, memorySeqFile)); err == nil && s.starting && ml > dbLast {
			// Messages held only in memory (disk full) were lost when the
			// collector stopped: their seqs are reported, never reused.
			r := edge.SeqRange{First: dbLast + 1, Last: ml}
			s.gone(r.First, r.Last)
			s.last = max(s.last, ml)
			*pending = append(*pending, s.recordDrop(seqRange(r), "held in memory while the disk was full, lost when the collector stopped", s.opts.now()))
			s.dirty = true
		}
		if s.skipTo > dbLast {
			// Started while the disk was full, above the ceiling: the seqs
			// between were never issued.
			s.gone(dbLast+1, s.skipTo)
			now := s.opts.now()
			r := edge.SeqRange{First: dbLast + 1, Last: s.skipTo}
			*pending = append(*pending, &edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{{
				Type: edge.EventSystem, State: edge.StateBufferRecreated, Subject: "buffer", TS: now,
				Ranges: []edge.SeqRange{r}, Count: r.Count(),
				Message: fmt.Sprintf("the collector started while the disk was too full to open the buffer database; seqs continued above the reserved ceiling, so seqs %s were never issued (those a run before held only in memory, on a full disk, were lost with it)", r),
			}}})
			s.skipTo = 0
		}
		return nil
	})
}

func seqRange(r edge.SeqRange) []uint64 {
	out := make([]uint64, 0, r.Count())
	for q := r.First; q <= r.Last && q >= r.First; q++ {
		out = append(out, q)
	}
	return out
}

// ErrNotDurable is returned (wrapped) by Append when messages got their seqs
// but are only held in memory: the disk is full or the database unusable.
var ErrNotDurable = errors.New("buffer: not durable")

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

func (s *Badger) Append(ctx context.Context, msgs ...*edge.Message) error {
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
	if err := writeSeqFile(filepath.Join(s.opts.Dir, memorySeqFile), s.last); err != nil {
		s.log.Error("cannot record the seqs issued in memory; a restart could issue them again", "err", err)
	}
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
		s.dirty = false
		s.count += n
		s.bytes += added
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

func (s *Badger) degrade(why string) {
	if s.degraded == "" {
		s.log.Error("buffer is not durable: messages are held in memory until the disk is usable", "reason", why, "memory_queue", s.opts.MemoryQueue)
	}
	s.degraded = why
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
	more := over(s.opts.MaxBytes * 95 / 100)
	var dropped []uint64
	s.deleteWhere(func(seq uint64, _ byte) (bool, bool) { return s.ackedByAll(seq), false }, more, nil)
	for c := byte(0); c < 2 && more(0, 0); c++ {
		s.deleteWhere(func(_ uint64, cl byte) (bool, bool) { return cl == c, false }, more, &dropped)
	}
	s.reportDrops(dropped, "buffer size cap")
}

func (s *Badger) reportDrops(dropped []uint64, reason string) {
	if len(dropped) == 0 {
		return
	}
	sort.Slice(dropped, func(i, j int) bool { return dropped[i] < dropped[j] })
	ev := s.recordDrop(dropped, reason, s.opts.now())
	s.log.Warn("buffer dropped messages that were not acknowledged", "count", len(dropped), "reason", reason, "detail", ev.Events[0].Message)
	s.dirty = true
	ev.Seq = s.nextSeq()
	if _, err := s.write([]*edge.Message{ev}); err != nil {
		s.degrade(fmt.Sprintf("write: %v", err))
		s.mem.add(ev, true)
	}
}

// deleteWhere deletes stored messages oldest first. pick says, by seq and
// drop class, whether to take a message and whether to stop the scan there;
// more says, given the bytes and messages taken so far, whether to go on.
// Unacknowledged messages taken are added to dropped when it is given;
// without it pick must take acknowledged messages only.
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
		wb := s.db.NewWriteBatch()
		for _, v := range batch {
			if err := wb.Delete(msgKey(v.seq)); err != nil {
				s.log.Error("buffer eviction failed", "err", err)
			}
		}
		if err := wb.Flush(); err != nil {
			s.log.Error("buffer eviction failed", "err", err)
			return
		}
		s.recent = s.recent[:0] // deleted messages must not be served from it
		seqs := make([]uint64, len(batch))
		for i, v := range batch {
			seqs[i] = v.seq
			s.bytes -= v.size
			s.count--
			if dropped != nil && !s.ackedByAll(v.seq) {
				*dropped = append(*dropped, v.seq)
			}
		}
		for _, r := range rangesOf(seqs) {
			s.gone(r.First, r.Last)
		}
		s.dirty = true
		if stopped {
			return
		}
	}
}

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
		more, _ := s.mem.Unacked(uplink, from, to, max-len(out))
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
	s.reportDrops(dropped, "corrupt record")
}

func (s *Badger) Ack(uplink string, seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.ackSet(uplink)
	if err != nil {
		return err
	}
	for _, q := range seqs {
		if q <= s.last {
			a.Add(q)
		}
	}
	s.dirty = true
	return nil
}

func (s *Badger) Between(from, to time.Time, fn func(*edge.Message) bool) error {
	s.mu.Lock()
	if s.db == nil {
		s.mu.Unlock()
		return s.mem.Between(from, to, fn)
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
	var sel []*edge.Message
	for seq := lo; seq <= hi; {
		batch, err := s.rangeMsgs(seq, hi, 256)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		for _, m := range batch {
			if !m.Created.Before(from) && m.Created.Before(to) {
				sel = append(sel, m)
			}
		}
		seq = batch[len(batch)-1].Seq + 1
	}
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].Created.Before(sel[j].Created) })
	for _, m := range sel {
		if !fn(m) {
			break
		}
	}
	return nil
}

// rangeMsgs reads up to n stored messages with from <= seq <= to.
func (s *Badger) rangeMsgs(from, to uint64, n int) ([]*edge.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil, nil
	}
	var out []*edge.Message
	err := s.db.View(func(txn *badger.Txn) error {
		iter := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pMsg}})
		defer iter.Close()
		for iter.Seek(msgKey(from)); iter.Valid() && len(out) < n; iter.Next() {
			seq := binary.BigEndian.Uint64(iter.Item().Key()[1:])
			if seq > to {
				break
			}
			err := iter.Item().Value(func(v []byte) error {
				m, err := DecodeRecord(v, seq, s.opts.Location)
				if err == nil {
					out = append(out, m)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
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

// Len is the number of messages held.
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// maintain runs the periodic work: writing acknowledgements, the retention
// age, value-log GC, and recovery from a degraded state.
func (s *Badger) maintain(ctx context.Context) {
	defer s.wg.Done()
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	gc := time.NewTicker(s.opts.GCInterval)
	defer gc.Stop()
	retry := time.NewTicker(s.opts.RetryInterval)
	defer retry.Stop()
	retention := time.NewTicker(s.retentionEvery())
	defer retention.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			s.mu.Lock()
			s.flushAcks()
			s.mu.Unlock()
		case <-retention.C:
			s.mu.Lock()
			s.applyRetention()
			s.mu.Unlock()
		case <-gc.C:
			s.runGC()
		case <-retry.C:
			s.mu.Lock()
			s.recover(ctx)
			s.mu.Unlock()
		}
	}
}

func (s *Badger) flushAcks() {
	if !s.dirty || s.db == nil || s.degraded != "" {
		return
	}
	if err := s.db.Update(s.setAcks); err != nil {
		s.log.Error("buffer: writing acknowledgements failed", "err", err)
		return
	}
	s.dirty = false
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
	s.reportDrops(dropped, "retention age")
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
	queued := s.mem.take()
	if len(queued) > 0 {
		if n, err := s.write(queued); err != nil {
			for _, m := range queued[n:] {
				s.mem.add(m, true)
			}
			s.log.Error("buffer still cannot write", "err", err)
			return
		}
	}
	s.log.Info("buffer is durable again", "moved_from_memory", len(queued))
	s.degraded = ""
	s.enforce()
	s.signalRescan()
}

// Close flushes acknowledgements and closes the database. It is idempotent.
func (s *Badger) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushAcks()
	if s.mem.Len() > 0 {
		s.log.Error("buffer closed with messages held only in memory; they are lost", "count", s.mem.Len())
	}
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

func readCeiling(dir string) (uint64, error) { return readSeqFile(filepath.Join(dir, "seq.ceiling")) }

// memorySeqFile holds the last seq issued while messages were held only in
// memory: those seqs are not in the database, and must never be issued
// again after a restart.
const memorySeqFile = "seq.memory"

func readSeqFile(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("buffer: read %s: %w", path, err)
	}
	c, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("buffer: %s is unreadable (%q); it must hold one number", path, b)
	}
	return c, nil
}

// writeCeiling records c.
func writeCeiling(dir string, c uint64) error {
	return writeSeqFile(filepath.Join(dir, "seq.ceiling"), c)
}

// writeSeqFile records a seq in a small file. An existing file is
// overwritten in place with a fixed-width number, which needs no new disk
// blocks, so it still works while the disk is full.
func writeSeqFile(path string, c uint64) error {
	line := fmt.Sprintf("%020d\n", c)
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		if st, err := f.Stat(); err == nil && st.Size() == int64(len(line)) {
			_, err = f.WriteAt([]byte(line), 0)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
		f.Close()
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	return err
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {}
