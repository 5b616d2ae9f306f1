// Package configstore keeps every configuration a collector accepted (at
// start, on a reload, on a rollback) in its data directory, with its
// SHA-256, time and who asked, so `edgecollector config history|diff|
// rollback` can say which configuration a gateway ran when, and go back to
// one. It only appends (the files of a version are never rewritten) and
// must never be in the poll path: the collector saves after a config is
// accepted.
package configstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Version is one accepted configuration.
type Version struct {
	N      int       `json:"n"`
	SHA256 string    `json:"sha256"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`  // "start", "SIGHUP", the control socket's peer
	How    string    `json:"how"` // start, reload, rollback
	File   string    `json:"file"`
	Note   string    `json:"note,omitempty"`
}

// Store is the directory of versions.
type Store struct {
	Dir string
}

// New returns the store in <data dir>/configs.
func New(dataDir string) *Store { return &Store{Dir: filepath.Join(dataDir, "configs")} }

func (s *Store) index() string { return filepath.Join(s.Dir, "index.jsonl") }

func (s *Store) body(sha string) string { return filepath.Join(s.Dir, sha+".yaml") }

// List returns every version, oldest first.
func (s *Store) List() ([]Version, error) {
	f, err := os.Open(s.index())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Version
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var v Version
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			continue // a torn last line after a power cut
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// Save records an accepted configuration: its bytes once per SHA-256, and
// a line in the index every time it is accepted.
func (s *Store) Save(raw []byte, sha, file, by, how, note string, at time.Time) (Version, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return Version{}, fmt.Errorf("config versions: %w", err)
	}
	if _, err := os.Stat(s.body(sha)); errors.Is(err, os.ErrNotExist) {
		tmp := s.body(sha) + ".tmp"
		if err := writeSync(tmp, raw); err != nil {
			return Version{}, fmt.Errorf("config versions: %w", err)
		}
		if err := os.Rename(tmp, s.body(sha)); err != nil {
			return Version{}, fmt.Errorf("config versions: %w", err)
		}
	}
	vs, err := s.List()
	if err != nil {
		return Version{}, err
	}
	v := Version{N: len(vs) + 1, SHA256: sha, At: at, By: by, How: how, File: file, Note: note}
	if len(vs) > 0 {
		v.N = vs[len(vs)-1].N + 1
	}
	line, _ := json.Marshal(v)
	f, err := os.OpenFile(s.index(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return Version{}, fmt.Errorf("config versions: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return Version{}, fmt.Errorf("config versions: %w", err)
	}
	return v, f.Sync()
}

// Get returns version n (or, with n <= 0, the one |n| before the last: 0
// is the last) and its bytes.
func (s *Store) Get(n int) (Version, []byte, error) {
	vs, err := s.List()
	if err != nil {
		return Version{}, nil, err
	}
	if len(vs) == 0 {
		return Version{}, nil, fmt.Errorf("no config versions in %s", s.Dir)
	}
	var v *Version
	if n <= 0 {
		if -n < len(vs) {
			v = &vs[len(vs)-1+n]
		}
	} else {
		for i := range vs {
			if vs[i].N == n {
				v = &vs[i]
			}
		}
	}
	if v == nil {
		return Version{}, nil, fmt.Errorf("no config version %d (there are %d: see edgecollector config history)", n, len(vs))
	}
	raw, err := os.ReadFile(s.body(v.SHA256))
	if err != nil {
		return *v, nil, fmt.Errorf("config version %d: %w", v.N, err)
	}
	return *v, raw, nil
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Short is a SHA-256 cut for people.
func Short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return strings.TrimSpace(sha)
}
