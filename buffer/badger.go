package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	// Probe, when set, builds the command that runs ProbeMain with args in
	// a child process: it opens and verifies the database before this
	// process opens it, and salvages what it can read from a damaged one
	// (see SelfProbe). Without it the database is opened here only, and a
	// database that makes badger panic stops the process.
	Probe func(ctx context.Context, args ...string) *exec.Cmd
	// ProbeTimeout bounds the probe (default 2m): a database whose open
	// hangs longer is treated as damaged.
	ProbeTimeout time.Duration
	// Background makes OpenBadger return before the open has settled (the
	// collector: polling must not wait for the disk). Otherwise it waits.
	Background bool
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

// before is what the seq files said at start: what earlier runs issued.
type before struct {
	ceiling uint64 // every seq an earlier run issued is at most this
	memLast uint64 // the last seq an earlier run issued in memory only
}

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
	starting bool                // the first open: messages an earlier run held in memory are gone
	opening  bool                // the open has not settled: Append waits
	opened   chan struct{}       // closed when the open has settled
	openErr  error               // why the open failed (the database is in use)
	marks    marks               // the low-water mark last written
	carry    []edge.SeqRange     // ranges of drop reports removed for room, for the next report
	before   before              // what the seq files said when this run started
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
	// compactC wakes the compactor; compactions counts the compactions.
	// The compactor never takes mu (a commit stalled on a full level 0
	// holds it until the compaction is done): it reads the database from
	// dbp, and compactMu keeps a database from being closed under it.
	compactC    chan struct{}
	compactions atomic.Int64
	dbp         atomic.Pointer[badger.DB]
	compactMu   sync.Mutex
	// retryC tells maintain that the store became degraded: it retries
	// the disk every RetryInterval until it is durable again (and sleeps
	// otherwise: a healthy store has no retry timer).
	retryC chan struct{}
	// flushC: an append tells maintain that its flush tick is near
	// (flushEarly), so that it runs in the append's wake-up and its timer
	// is pushed back; flushedAt is when it last ran.
	flushC    chan struct{}
	flushedAt time.Time
	// appendedSinceFlush says whether a commit carried the
	// acknowledgements since the last flush tick.
	appendedSinceFlush bool
	// written counts the bytes committed; pagedOut is written at the last
	// page-out.
	written, pagedOut int64

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
		WithDetectConflicts(false).
		// The buffer compacts (compact.go): badger's compactors wake every
		// 50 ms each, work or not.
		WithNumCompactors(0).
		// Badger's expvar counters: nobody reads them, and they tick.
		WithMetricsEnabled(false)
	if o.Profile == "default" {
		return bo.WithValueLogFileSize(128 << 20)
	}
	// The small profile: ~40 MB RSS instead of badger's ~54 MB and 4 GB of
	// address space, which a 32-bit ARM gateway does not have.
	return bo.
		WithMemTableSize(2 << 20).
		WithNumMemtables(2).
		WithValueLogFileSize(16 << 20).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(5).
		WithBaseTableSize(2 << 20).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithValueThreshold(1 << 10)
}

// OpenBadger starts the durable buffer in opts.Dir and returns at once:
// the store is usable while the database opens. Until the open settles,
// Append waits (the appender's bounded queue holds new messages, without a
// seq) and reads see nothing; Opened is closed when it has settled.
//
// Opening never stops the collector. With opts.Probe set, the database is
// first opened and verified in a child process, so a database that makes
// badger panic (in a goroutine badger starts, which no recover reaches),
// fail or hang is moved aside as db.corrupt-<time> (kept) and a new one is
// started; every seq that was issued and not acknowledged is then named in a
// buffer_dropped event, and the seqs skipped up to the ceiling in a
// buffer_recreated event. A disk too full to write starts the store
// degraded: messages wait in memory until there is room.
//
// The only error is a database in use by another collector.
// DefaultBadgerOpts are the documented defaults of the durable buffer
// (config takes its numbers from here): a 1 GiB cap, 64 MiB kept free on
// the disk, 30 days' retention (the regulation's records), 10,000 messages
// held in memory while the disk is unusable. Set Dir and Opts.Uplinks.
func DefaultBadgerOpts() BadgerOpts {
	return BadgerOpts{Opts: Opts{MaxBytes: 1 << 30, Retention: 30 * 24 * time.Hour}, MinFree: 64 << 20, MemoryQueue: 10000, Profile: "small"}
}

func OpenBadger(ctx context.Context, opts BadgerOpts) (*Badger, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MemoryQueue <= 0 {
		opts.MemoryQueue = DefaultBadgerOpts().MemoryQueue
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
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 2 * time.Minute
	}
	opts.MinFree = max(opts.MinFree, profileFloor(opts.Profile))
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("buffer: create %s: %w", opts.Dir, err)
	}
	s := &Badger{opts: opts, log: opts.Logger.With("component", "buffer"), book: newBook(opts.Uplinks), buckets: map[int64][2]uint64{},
		opened: make(chan struct{}), opening: true, degraded: "opening the database", compactC: make(chan struct{}, 1), retryC: make(chan struct{}, 1),
		flushC: make(chan struct{}, 1)}
	s.mem = newQueue(opts.MemoryQueue, s.book, s.nextSeq, func() uint64 { return s.last + 1 })
	if err := checkLock(s.dbDir()); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.compactor(bctx)
	}()
	go func() {
		defer s.wg.Done()
		s.settle(bctx)
		s.maintain(bctx)
	}()
	if !opts.Background {
		select {
		case <-s.opened:
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		}
		if err := s.openErr; err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// ErrNotDurable is returned (wrapped) by Append when messages got their seqs
// but are only held in memory: the disk is full or the database unusable.
var ErrNotDurable = errors.New("buffer: not durable")

// Opened is closed once the open has settled: the database is open, or the
// store runs degraded in memory.
func (s *Badger) Opened() <-chan struct{} { return s.opened }

func (s *Badger) dbDir() string { return filepath.Join(s.opts.Dir, "db") }

// Close flushes acknowledgements and closes the database. It is idempotent.
func (s *Badger) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushAcks()
	if s.db != nil && s.degraded == "" {
		s.writeMarks()
	}
	if s.mem.Len() > 0 {
		s.log.Error("buffer closed with messages held only in memory; they are lost", "count", s.mem.Len())
	}
	if s.db == nil {
		return nil
	}
	return s.closeDB(s.db)
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
