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
// not written over.
func Open(path string, key []byte) (*Log, error) {
	l := &Log{path: path, key: key, head: genesis, now: time.Now}
	if _, err := os.Stat(path); err == nil {
		r, err := Verify(path, key, "")
		if err != nil {
			return nil, fmt.Errorf("audit log %s: %w", path, err)
		}
		l.n, l.head = r.Entries, r.Head
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l.f = f
	return l, nil
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
}

// Verify checks the chain of the log at path. want, when not empty, is a
// head published elsewhere ("N HASH" or just HASH): the chain must end
// there. Otherwise the kept head file is used when it exists.
func Verify(path string, key []byte, want string) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	l := &Log{key: key}
	prev, n := genesis, uint64(0)
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return Result{}, err
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			return Result{}, fmt.Errorf("line %d: truncated entry (no newline)", line)
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil {
			return Result{}, fmt.Errorf("line %d: not an audit entry: %v", line, err)
		}
		switch {
		case e.N != n+1:
			return Result{}, fmt.Errorf("line %d: entry %d follows entry %d: an entry was removed or moved", line, e.N, n)
		case e.Prev != prev:
			return Result{}, fmt.Errorf("line %d (entry %d): its prev does not match the entry before: the chain is broken", line, e.N)
		case sum(l.mac(), e) != e.Hash:
			return Result{}, fmt.Errorf("line %d (entry %d): hash mismatch: the entry was edited", line, e.N)
		}
		prev, n = e.Hash, e.N
	}
	res := Result{Entries: n, Head: prev}
	src := "the published head"
	if want == "" {
		if b, err := os.ReadFile(HeadFile(path)); err == nil {
			want, src = strings.TrimSpace(string(b)), "the kept head "+HeadFile(path)
		}
	}
	if want != "" {
		wn, wh := uint64(0), want
		if i := strings.IndexByte(want, ' '); i > 0 {
			fmt.Sscan(want[:i], &wn)
			wh = want[i+1:]
		}
		if wh != prev || (wn != 0 && wn != n) {
			return res, fmt.Errorf("the chain ends at entry %d %s, but %s is %s: entries were removed from the end or the chain was rewritten", n, prev, src, want)
		}
	}
	return res, nil
}
