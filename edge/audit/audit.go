// Package audit is the collector's tamper-evident audit log: one JSON line
// per entry, each carrying the hash of the entry before it, so an edited,
// removed or reordered entry breaks the chain. With a key file the hashes
// are HMAC-SHA256 (nobody without the key can forge a chain); without one
// they are SHA-256. The head (last index and hash) is also kept in a second
// file and published in every status heartbeat, which catches a removed last
// entry and a chain rewritten from scratch.
//
// The log records config loads and rejections, alarm and interlock events,
// resets, bypasses and acknowledgements. It is never rewritten in place:
// entries are only appended. The active file is rotated by size and age
// (renamed to <file>.<first entry, 12 digits>); the first entry of the new
// file is a "rotated" entry whose prev is the last hash of the file before,
// so the chain runs on across files. When the files together would pass
// their cap (or are older than MaxAge) the oldest are pruned, and the
// pruning is an entry of its own that names where the log now starts:
// Verify tells a pruned file from a removed one.
package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Opts configures a Log. Start from DefaultOpts.
type Opts struct {
	Path string // the active file
	Key  []byte // HMAC key (nil: SHA-256)
	// MaxFileBytes: the active file is rotated once it reaches this size.
	MaxFileBytes int64
	// MaxFileAge: the active file is rotated at the first entry after its
	// first entry is this old (0: no rotation by age).
	MaxFileAge time.Duration
	// MaxTotalBytes caps all files together: at a rotation the oldest
	// files are pruned so that the rest and a full active file fit.
	MaxTotalBytes int64
	// MaxAge prunes a rotated file whose entries are all older (0: kept
	// until the size cap needs the room).
	MaxAge time.Duration
	// NearFull is the share of MaxTotalBytes at which OnNearFull is called
	// (once before each prune).
	NearFull float64
	// OnNearFull is called (outside the log's lock) when the files reach
	// NearFull of their cap.
	OnNearFull func(Usage)
	Now        func() time.Time
}

// DefaultOpts is 4 MiB files rotated at least daily, 64 MiB in all, no
// pruning by age, a warning at 90 %.
func DefaultOpts() Opts {
	return Opts{MaxFileBytes: 4 << 20, MaxFileAge: 24 * time.Hour, MaxTotalBytes: 64 << 20, NearFull: 0.9, Now: time.Now}
}

// MaxDetail bounds an entry's detail (longer ones are cut and say so).
const MaxDetail = 8 << 10

func (o *Opts) check() error {
	d := DefaultOpts()
	if o.Now == nil {
		o.Now = d.Now
	}
	if o.NearFull <= 0 || o.NearFull > 1 {
		o.NearFull = d.NearFull
	}
	switch {
	case o.Path == "":
		return errors.New("audit log: no path")
	case o.MaxFileBytes < 4<<10:
		return fmt.Errorf("audit log %s: max_file_bytes %d: want at least 4KiB", o.Path, o.MaxFileBytes)
	case o.MaxTotalBytes < 2*o.MaxFileBytes:
		return fmt.Errorf("audit log %s: max_total_bytes %d: want at least twice max_file_bytes (%d)", o.Path, o.MaxTotalBytes, o.MaxFileBytes)
	case o.MaxFileAge < 0 || o.MaxAge < 0:
		return fmt.Errorf("audit log %s: negative max_file_age or max_age", o.Path)
	}
	return nil
}

// Rec is what a caller records; the log adds N, TS, the chain and the
// defaults (ID "a<N>", Source "collector", Result "ok").
type Rec struct {
	ID       string
	Source   string
	Category string
	Type     string
	Subject  string
	Result   string
	Detail   string
}

// Usage is the audit store's size against its cap.
type Usage struct {
	Files    int   `json:"files"`
	Bytes    int64 `json:"bytes"`
	MaxBytes int64 `json:"max_bytes"`
	NearFull bool  `json:"near_full"`
	// First is the oldest entry kept.
	First uint64 `json:"first"`
}

// rotFile is a rotated file: its first entry's index, prev and time.
type rotFile struct {
	name      string
	first     uint64
	firstPrev string
	firstTS   time.Time
	bytes     int64
}

// Log appends entries to the audit files.
type Log struct {
	mu   sync.Mutex
	o    Opts
	f    *os.File
	n    uint64
	head string
	// the active file: entries, bytes, first entry's index, prev and time
	fileEntries   uint64
	fileBytes     int64
	fileFirst     uint64
	fileFirstPrev string
	fileStart     time.Time
	rotated       []rotFile
	warned        bool
	broken        error
	// Repaired says what Open repaired of a crash's traces ("" if none).
	Repaired string
}

// ReadKey reads an HMAC key file ("" = no key).
func ReadKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	k, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	k = []byte(strings.TrimSpace(string(k)))
	if len(k) < 16 {
		return nil, fmt.Errorf("audit key %s: want at least 16 bytes", path)
	}
	return k, nil
}

func macFor(key []byte) func() hash.Hash {
	if key != nil {
		return func() hash.Hash { return hmac.New(sha256.New, key) }
	}
	return sha256.New
}

// Open opens the log at path with DefaultOpts.
func Open(path string, key []byte) (*Log, error) {
	o := DefaultOpts()
	o.Path, o.Key = path, key
	return New(o)
}

// New opens (or creates) the log and checks the active file's chain, its
// link to the last rotated file and the kept head, so new entries continue
// it (Verify checks every file). A broken chain is an error: it must be
// looked at, not written over. The states a crash leaves are not breaks,
// and are repaired (Repaired says how): kill -9 between an entry's sync
// and the kept head's update leaves the head behind (it is moved on); a
// power cut during an entry's write leaves a last line without its newline
// that was never acknowledged (it is cut off); a stop in the middle of a
// rotation leaves no active file (the rotation is finished).
func New(o Opts) (*Log, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	l := &Log{o: o, head: genesis}
	rot, err := listRotated(o.Path)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
	}
	if l.rotated, err = readRotated(o.Path, rot, macFor(o.Key)); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
	}
	var notes []string
	c := chain{head: genesis}
	if len(l.rotated) > 0 {
		last := l.rotated[len(l.rotated)-1]
		e, err := lastEntry(filepath.Join(filepath.Dir(o.Path), last.name), macFor(o.Key))
		if err != nil {
			return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
		}
		c = chain{n: e.n, head: e.hash, prevHead: e.prev, started: true}
	}
	_, statErr := os.Stat(o.Path)
	if statErr == nil {
		cont := len(l.rotated) > 0
		if c, err = scanFile(o.Path, macFor(o.Key), c, cont, true); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
		}
		if c.torn > 0 {
			if err := os.Truncate(o.Path, c.valid); err != nil {
				return nil, fmt.Errorf("audit log %s: cut the torn last entry: %w", o.Path, err)
			}
			notes = append(notes, fmt.Sprintf("a torn last entry (%d bytes without a newline, never acknowledged) was cut off", c.torn))
		}
		l.fileEntries, l.fileBytes, l.fileFirst, l.fileFirstPrev, l.fileStart = c.fileEntries, c.valid, c.fileFirst, c.fileFirstPrev, c.fileStart
	}
	if len(l.rotated) == 0 && c.fileEntries > 0 {
		if _, err := c.checkStart(filepath.Base(o.Path)); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
		}
	}
	if b, err := os.ReadFile(HeadFile(o.Path)); err == nil {
		kept := strings.TrimSpace(string(b))
		switch behind := c.behind(kept); {
		case kept == "":
			// A power cut before the head's bytes reached the disk (an
			// older release did not sync it): no head to check against,
			// as if it were missing.
			if err := writeHead(o.Path, c.n, c.head); err != nil {
				return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
			}
			notes = append(notes, "the kept head was empty (a power cut before it was written): written again")
		case behind == 0:
		case behind > 0:
			if err := writeHead(o.Path, c.n, c.head); err != nil {
				return nil, fmt.Errorf("audit log %s: %w", o.Path, err)
			}
			notes = append(notes, fmt.Sprintf("the kept head was %s behind (a stop between entry %d and its head): moved on", entries(behind), c.n))
		default:
			return nil, fmt.Errorf("audit log %s: the chain ends at entry %d %s, but the kept head %s is %s: entries were removed from the end or the chain was rewritten",
				o.Path, c.n, c.head, HeadFile(o.Path), kept)
		}
	}
	l.n, l.head = c.n, c.head
	f, err := os.OpenFile(o.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l.f = f
	if l.fileEntries == 0 && len(l.rotated) > 0 { // no active file, or an empty one: a stop mid-rotation
		last := l.rotated[len(l.rotated)-1]
		if _, err := l.append(o.Now(), l.rotationRec(last, "finished at the next start")); err != nil {
			f.Close()
			return nil, err
		}
		notes = append(notes, "a rotation stopped before the new file was started: finished")
	}
	l.Repaired = strings.Join(notes, "; ")
	return l, nil
}

// Record appends an entry (kind = category, action = type, who = source)
// with the result "ok".
func (l *Log) Record(kind, action, subject, who, detail string) error {
	_, err := l.Write(Rec{Category: kind, Type: action, Subject: subject, Source: who, Detail: detail})
	return err
}

// Write appends an entry and syncs it before it returns; it rotates and
// prunes first when the active file is due. An error means the entry is
// not in the log: a caller about to act on a command must not act.
func (l *Log) Write(r Rec) (Entry, error) {
	l.mu.Lock()
	e, err := l.write(r)
	u := l.usage()
	fire := err == nil && u.NearFull && !l.warned
	if fire {
		l.warned = true
	}
	l.mu.Unlock()
	if fire && l.o.OnNearFull != nil {
		l.o.OnNearFull(u)
	}
	return e, err
}

func (l *Log) write(r Rec) (Entry, error) {
	if l.f == nil {
		return Entry{}, fmt.Errorf("audit log %s: closed", l.o.Path)
	}
	if l.broken != nil {
		return Entry{}, l.broken
	}
	now := l.o.Now()
	if l.fileEntries > 0 && (l.fileBytes >= l.o.MaxFileBytes || l.o.MaxFileAge > 0 && now.Sub(l.fileStart) >= l.o.MaxFileAge) {
		if err := l.rotate(now); err != nil {
			return Entry{}, err
		}
	}
	return l.append(now, r)
}

// append writes one entry to the active file, syncs it and moves the head.
// A failed write or sync is cut off again, so the file never holds an
// entry the chain has not; if even that fails the log refuses every
// further write (fail closed) until it is opened again.
func (l *Log) append(now time.Time, r Rec) (Entry, error) {
	if len(r.Detail) > MaxDetail {
		r.Detail = r.Detail[:MaxDetail] + " ... (cut)"
	}
	e := Entry{V: 2, N: l.n + 1, TS: now.Format(time.RFC3339Nano), ID: r.ID, Source: r.Source, Category: r.Category, Type: r.Type,
		Subject: r.Subject, Result: r.Result, Detail: r.Detail, Prev: l.head}
	if e.ID == "" {
		e.ID = fmt.Sprintf("a%d", e.N)
	}
	if e.Source == "" {
		e.Source = "collector"
	}
	if e.Result == "" {
		e.Result = "ok"
	}
	e.Hash = e.sum(macFor(l.o.Key)())
	b, _ := json.Marshal(e)
	b = append(b, '\n')
	_, err := l.f.Write(b)
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		err = fmt.Errorf("audit log %s: entry %d not written: %w", l.o.Path, e.N, err)
		if terr := l.f.Truncate(l.fileBytes); terr != nil {
			l.broken = fmt.Errorf("%w (and the partial entry could not be cut off: %v; the log refuses writes until the collector restarts)", err, terr)
		}
		return Entry{}, err
	}
	if l.fileEntries == 0 {
		l.fileFirst, l.fileFirstPrev, l.fileStart = e.N, e.Prev, now
	}
	l.fileEntries++
	l.fileBytes += int64(len(b))
	l.n, l.head = e.N, e.Hash
	if err := writeHead(l.o.Path, e.N, e.Hash); err != nil {
		return e, fmt.Errorf("audit log %s: entry %d written, but its head not kept: %w", l.o.Path, e.N, err)
	}
	return e, nil
}

// Head is the last entry's index and hash.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.head
}

// Usage is the store's size against its cap.
func (l *Log) Usage() Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usage()
}

func (l *Log) usage() Usage {
	u := Usage{Files: len(l.rotated), Bytes: l.fileBytes, MaxBytes: l.o.MaxTotalBytes, First: l.fileFirst}
	if l.fileEntries > 0 {
		u.Files++
	}
	for _, r := range l.rotated {
		u.Bytes += r.bytes
	}
	if len(l.rotated) > 0 {
		u.First = l.rotated[0].first
	}
	u.NearFull = float64(u.Bytes) >= l.o.NearFull*float64(l.o.MaxTotalBytes)
	return u
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// HeadFile is where the kept head is written.
func HeadFile(path string) string { return path + ".head" }

// writeHead replaces the kept head durably: the new bytes are synced
// before the rename and the directory after it, so a power cut leaves the
// old head or the new one, never an empty file.
func writeHead(path string, n uint64, h string) error {
	tmp := HeadFile(path) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d %s\n", n, h)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, HeadFile(path)); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
