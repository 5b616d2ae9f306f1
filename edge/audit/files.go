package audit

import (
	"bufio"
	"bytes"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// listRotated names the rotated files of the log at path
// (<base>.<first entry>), oldest first.
func listRotated(path string) ([]string, error) {
	des, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	type named struct {
		name string
		n    uint64
	}
	var fs []named
	prefix := filepath.Base(path) + "."
	for _, de := range des {
		s, ok := strings.CutPrefix(de.Name(), prefix)
		if !ok || s == "" || strings.Trim(s, "0123456789") != "" || !de.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		fs = append(fs, named{de.Name(), n})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].n < fs[j].n })
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out, nil
}

// rotatedName is the name a file whose first entry is n is rotated to.
func rotatedName(path string, n uint64) string {
	return fmt.Sprintf("%s.%012d", filepath.Base(path), n)
}

// readRotated reads each rotated file's size and first entry.
func readRotated(path string, names []string, mac func() hash.Hash) ([]rotFile, error) {
	var out []rotFile
	for _, name := range names {
		full := filepath.Join(filepath.Dir(path), name)
		f, err := os.Open(full)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		b, err := bufio.NewReader(f).ReadBytes('\n')
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("rotated file %s: no whole first entry: %v", name, err)
		}
		p, err := parseLine(b, mac)
		if err != nil {
			return nil, fmt.Errorf("rotated file %s line 1: %w", name, err)
		}
		if rotatedName(path, p.n) != name {
			return nil, fmt.Errorf("rotated file %s starts at entry %d: renamed or edited", name, p.n)
		}
		out = append(out, rotFile{name: name, first: p.n, firstPrev: p.prev, firstTS: p.time(), bytes: st.Size()})
	}
	return out, nil
}

// lastEntry reads and checks the last entry of a rotated file.
func lastEntry(path string, mac func() hash.Hash) (parsed, error) {
	f, err := os.Open(path)
	if err != nil {
		return parsed{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return parsed{}, err
	}
	size := st.Size()
	for w := int64(64 << 10); ; w *= 4 {
		w = min(w, size)
		buf := make([]byte, w)
		if _, err := f.ReadAt(buf, size-w); err != nil && err != io.EOF {
			return parsed{}, err
		}
		if len(buf) == 0 || buf[len(buf)-1] != '\n' {
			return parsed{}, fmt.Errorf("rotated file %s ends in the middle of an entry: cut or edited", filepath.Base(path))
		}
		i := bytes.LastIndexByte(buf[:len(buf)-1], '\n')
		if i < 0 && w < size {
			continue
		}
		p, err := parseLine(buf[i+1:], mac)
		if err != nil {
			return parsed{}, fmt.Errorf("rotated file %s, last entry: %w", filepath.Base(path), err)
		}
		if p.recomputed != p.hash {
			return parsed{}, fmt.Errorf("rotated file %s, last entry %d: hash mismatch: the entry was edited", filepath.Base(path), p.n)
		}
		return p, nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// rotationRec is the first entry of a new active file: it names the
// rotated file, and its prev is that file's last hash.
func (l *Log) rotationRec(r rotFile, how string) Rec {
	return Rec{Category: "audit", Type: "rotated", Subject: r.name,
		Detail: fmt.Sprintf("entries %d-%d (%d bytes) moved to %s; this file goes on after its last hash %s%s", r.first, l.n, r.bytes, r.name, l.head, how)}
}

// rotate renames the active file after its first entry, starts a new one
// with a rotation entry, and prunes.
func (l *Log) rotate(now time.Time) error {
	dir := filepath.Dir(l.o.Path)
	r := rotFile{name: rotatedName(l.o.Path, l.fileFirst), first: l.fileFirst, firstPrev: l.fileFirstPrev, firstTS: l.fileStart, bytes: l.fileBytes}
	full := filepath.Join(dir, r.name)
	if _, err := os.Lstat(full); err == nil {
		return fmt.Errorf("audit log %s: cannot rotate: %s exists", l.o.Path, full)
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit log %s: rotate: %w", l.o.Path, err)
	}
	l.f = nil
	rerr := os.Rename(l.o.Path, full)
	if rerr == nil {
		rerr = syncDir(dir)
	}
	f, err := os.OpenFile(l.o.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		l.broken = fmt.Errorf("audit log %s: no active file after a rotation: %w", l.o.Path, err)
		return l.broken
	}
	l.f = f
	if rerr != nil {
		return fmt.Errorf("audit log %s: rotate to %s: %w", l.o.Path, full, rerr)
	}
	l.rotated = append(l.rotated, r)
	l.fileEntries, l.fileBytes = 0, 0
	if _, err := l.append(now, l.rotationRec(r, "")); err != nil {
		return err
	}
	return l.prune(now)
}

// prune removes the oldest rotated files while the rest and a full active
// file would pass MaxTotalBytes, or while a file's entries are all older
// than MaxAge. The pruning entry is written first and names where the log
// now starts (entry and prev), which is what Verify checks the oldest kept
// file against.
func (l *Log) prune(now time.Time) error {
	var total int64
	for _, r := range l.rotated {
		total += r.bytes
	}
	k, removed := 0, int64(0)
	byCap, byAge := false, false
	for ; k < len(l.rotated); k++ {
		next := l.fileStart // the entries of file k are all older than the next file's first
		if k+1 < len(l.rotated) {
			next = l.rotated[k+1].firstTS
		}
		over := total-removed+l.o.MaxFileBytes > l.o.MaxTotalBytes
		old := l.o.MaxAge > 0 && now.Sub(next) > l.o.MaxAge
		if !over && !old {
			break
		}
		byCap, byAge = byCap || over, byAge || old && !over
		removed += l.rotated[k].bytes
	}
	var why []string
	if byCap {
		why = append(why, fmt.Sprintf("over the cap of %d bytes", l.o.MaxTotalBytes))
	}
	if byAge {
		why = append(why, "older than "+l.o.MaxAge.String())
	}
	if k == 0 {
		return nil
	}
	startN, startPrev := l.fileFirst, l.fileFirstPrev
	if k < len(l.rotated) {
		startN, startPrev = l.rotated[k].first, l.rotated[k].firstPrev
	}
	var names []string
	for _, r := range l.rotated[:k] {
		names = append(names, r.name)
	}
	rec := Rec{Category: "audit", Type: "pruned", Subject: strings.Join(names, ", "),
		Detail: fmt.Sprintf("entries %d-%d removed (%d bytes in %d files, %s); the log now starts at entry %d after hash %s",
			l.rotated[0].first, startN-1, removed, k, strings.Join(why, ", "), startN, startPrev)}
	if _, err := l.append(now, rec); err != nil {
		return err
	}
	dir := filepath.Dir(l.o.Path)
	var failed []string
	kept := append([]rotFile(nil), l.rotated[k:]...)
	for i, r := range l.rotated[:k] {
		if err := os.Remove(filepath.Join(dir, r.name)); err != nil && !os.IsNotExist(err) {
			failed = append(failed, err.Error())
			kept = append(append([]rotFile(nil), l.rotated[i:k]...), kept...)
			break
		}
	}
	syncDir(dir)
	l.rotated = kept
	l.warned = false
	if len(failed) > 0 {
		_, err := l.append(now, Rec{Category: "audit", Type: "prune_failed", Result: "failed: " + failed[0],
			Detail: "the files not removed stay and are pruned again at the next rotation"})
		return err
	}
	return nil
}
