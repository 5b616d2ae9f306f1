// Package audit is the collector's tamper-evident audit log: one JSON line
// per entry, each carrying the hash of the entry before it, so an edited,
// removed or reordered entry breaks the chain. With a key file the hashes
// are HMAC-SHA256 (nobody without the key can forge a chain); without one
// they are SHA-256. The head (last index and hash) is also kept in a second
// file and published in every status heartbeat, which catches a removed last
// entry and a chain rewritten from scratch.
//
// The log records config loads and rejections, alarm and interlock events,
// resets, bypasses and acknowledgements. It must never be rewritten in
// place: entries are only appended.
package audit

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Entry is one line of the log.
type Entry struct {
	N       uint64 `json:"n"`
	TS      string `json:"ts"`
	Kind    string `json:"kind"`    // config, alarm, fault, interlock, system, control
	Action  string `json:"action"`  // loaded, raised, reset, bypassed, ...
	Subject string `json:"subject"` // point, interlock or file
	Who     string `json:"who,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Prev    string `json:"prev"`
	Hash    string `json:"hash"`
}

// Log appends entries to the audit file.
type Log struct {
	mu   sync.Mutex
	path string
	key  []byte
	f    *os.File
	n    uint64
	head string
	now  func() time.Time
	// Repaired says what Open repaired of a crash's traces ("" if none).
	Repaired string
}

// genesis is the prev of the first entry.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

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

// Open opens (or creates) the log at path and checks its chain, so new
// entries continue it. A broken chain is an error: it must be looked at,
// not written over. Two states a crash leaves are not breaks, and are
// repaired (Repaired says how): kill -9 between an entry's sync and the
// kept head's update leaves the head one entry behind (the head is moved
// on); a power cut during an entry's write leaves a last line without its
// newline that was never acknowledged (it is cut off).
func Open(path string, key []byte) (*Log, error) {
	l := &Log{path: path, key: key, head: genesis, now: time.Now}
	if _, err := os.Stat(path); err == nil {
		c, err := scan(path, key)
		if err != nil {
			return nil, fmt.Errorf("audit log %s: %w", path, err)
		}
		var notes []string
		if c.torn > 0 {
			if err := os.Truncate(path, c.valid); err != nil {
				return nil, fmt.Errorf("audit log %s: cut the torn last entry: %w", path, err)
			}
			notes = append(notes, fmt.Sprintf("a torn last entry (%d bytes without a newline, never acknowledged) was cut off", c.torn))
		}
		if b, err := os.ReadFile(HeadFile(path)); err == nil {
			kept := strings.TrimSpace(string(b))
			switch {
			case headMatches(kept, c.n, c.head):
			case c.n > 0 && headMatches(kept, c.n-1, c.prevHead):
				if err := writeHead(path, c.n, c.head); err != nil {
					return nil, fmt.Errorf("audit log %s: %w", path, err)
				}
				notes = append(notes, fmt.Sprintf("the kept head was one entry behind (a stop between entry %d and its head): moved on", c.n))
			default:
				return nil, fmt.Errorf("audit log %s: the chain ends at entry %d %s, but the kept head %s is %s: entries were removed from the end or the chain was rewritten",
					path, c.n, c.head, HeadFile(path), kept)
			}
		}
		l.n, l.head = c.n, c.head
		l.Repaired = strings.Join(notes, "; ")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l.f = f
	return l, nil
}

// headMatches reports whether a head ("N HASH" or HASH) names entry n.
func headMatches(want string, n uint64, h string) bool {
	wn, wh := uint64(0), want
	if i := strings.IndexByte(want, ' '); i > 0 {
		fmt.Sscan(want[:i], &wn)
		wh = want[i+1:]
	}
	return wh == h && (wn == 0 || wn == n)
}

func (l *Log) mac() hash.Hash {
	if l.key != nil {
		return hmac.New(sha256.New, l.key)
	}
	return sha256.New()
}

// sum is the hash of an entry: over prev and the entry's JSON without hash.
func sum(h hash.Hash, e Entry) string {
	e.Hash = ""
	b, _ := json.Marshal(e)
	h.Write([]byte(e.Prev))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// Record appends an entry and syncs it.
func (l *Log) Record(kind, action, subject, who, detail string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("audit log closed")
	}
	e := Entry{N: l.n + 1, TS: l.now().Format(time.RFC3339Nano), Kind: kind, Action: action, Subject: subject, Who: who, Detail: detail, Prev: l.head}
	e.Hash = sum(l.mac(), e)
	b, _ := json.Marshal(e)
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l.n, l.head = e.N, e.Hash
	return writeHead(l.path, e.N, e.Hash)
}

// Head is the last entry's index and hash.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.head
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

func writeHead(path string, n uint64, h string) error {
	tmp := HeadFile(path) + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %s\n", n, h)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, HeadFile(path))
}

// Result of a verification.
type Result struct {
	Entries uint64
	Head    string
	Note    string // a crash's trace that is not a break
}

// chain is what scan found: n entries ending at head (prevHead is the hash
// of entry n-1), valid bytes of whole entries, and torn bytes after them.
type chain struct {
	n              uint64
	head, prevHead string
	valid          int64
	torn           int64
}

// scan checks every entry of the log; a last line without its newline is
// reported as torn, not as an error.
func scan(path string, key []byte) (chain, error) {
	f, err := os.Open(path)
	if err != nil {
		return chain{}, err
	}
	defer f.Close()
	l := &Log{key: key}
	c := chain{head: genesis, prevHead: genesis}
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return chain{}, err
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			c.torn = int64(len(b))
			break
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil {
			return chain{}, fmt.Errorf("line %d: not an audit entry: %v", line, err)
		}
		switch {
		case e.N != c.n+1:
			return chain{}, fmt.Errorf("line %d: entry %d follows entry %d: an entry was removed or moved", line, e.N, c.n)
		case e.Prev != c.head:
			return chain{}, fmt.Errorf("line %d (entry %d): its prev does not match the entry before: the chain is broken", line, e.N)
		case sum(l.mac(), e) != e.Hash:
			return chain{}, fmt.Errorf("line %d (entry %d): hash mismatch: the entry was edited", line, e.N)
		}
		c.prevHead, c.head, c.n = c.head, e.Hash, e.N
		c.valid += int64(len(b))
	}
	return c, nil
}

// Verify checks the chain of the log at path. want, when not empty, is a
// head published elsewhere ("N HASH" or just HASH): the chain must end
// there. Otherwise the kept head file is used when it exists.
func Verify(path string, key []byte, want string) (Result, error) {
	c, err := scan(path, key)
	if err != nil {
		return Result{}, err
	}
	if c.torn > 0 {
		return Result{}, fmt.Errorf("entry %d: truncated entry (no newline)", c.n+1)
	}
	res := Result{Entries: c.n, Head: c.head}
	src := "the published head"
	if want == "" {
		if b, err := os.ReadFile(HeadFile(path)); err == nil {
			want, src = strings.TrimSpace(string(b)), "the kept head "+HeadFile(path)
		}
	}
	if want != "" && !headMatches(want, c.n, c.head) && src != "the published head" && c.n > 0 && headMatches(want, c.n-1, c.prevHead) {
		res.Note = fmt.Sprintf("the kept head is one entry behind (a stop between entry %d and its head); the collector moves it on at its next start", c.n)
		return res, nil
	}
	if want != "" && !headMatches(want, c.n, c.head) {
		return res, fmt.Errorf("the chain ends at entry %d %s, but %s is %s: entries were removed from the end or the chain was rewritten", c.n, c.head, src, want)
	}
	return res, nil
}
