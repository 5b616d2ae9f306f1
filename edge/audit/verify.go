package audit

import (
	"bufio"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// chain is what the scan found so far: entries up to n ending at head
// (prevHead is the hash before), where the log starts, the last pruning's
// mark, and per file its entries, valid bytes and torn bytes after them.
type chain struct {
	n              uint64
	head, prevHead string
	started        bool
	firstN         uint64
	firstPrev      string
	entries        uint64
	prune          *mark
	lookFor        string // a published head's hash, found at entry lookN
	lookN          uint64
	seen           map[string]uint64 // hash -> index, this file and the entry before it

	fileEntries   uint64
	fileFirst     uint64
	fileFirstPrev string
	fileStart     time.Time
	valid, torn   int64
}

// mark is where a pruning said the log starts.
type mark struct {
	n    uint64
	prev string
}

var pruneRE = regexp.MustCompile(`the log now starts at entry (\d+) after hash ([0-9a-f]{64})$`)

// scanFile checks every entry of one file, continuing c. cont: the file
// must follow the chain so far (c ends where the file before ended). last:
// a line without its newline at the end is reported as torn, not as an
// error.
func scanFile(path string, mac func() hash.Hash, c chain, cont, last bool) (chain, error) {
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	name := filepath.Base(path)
	c.fileEntries, c.valid, c.torn = 0, 0, 0
	c.seen = map[string]uint64{c.head: c.n}
	r := bufio.NewReaderSize(f, 64<<10)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return c, err
		}
		if b[len(b)-1] != '\n' {
			if !last {
				return c, fmt.Errorf("%s ends in the middle of an entry (line %d): the file was cut or edited", name, line)
			}
			c.torn = int64(len(b))
			break
		}
		p, err := parseLine(b, mac)
		if err != nil {
			return c, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		switch {
		case !c.started && !cont:
			c.started, c.firstN, c.firstPrev = true, p.n, p.prev
		case p.n != c.n+1 && line == 1:
			return c, fmt.Errorf("%s starts at entry %d, but the chain before it ends at entry %d: %s missing (a rotated file was removed or replaced)",
				name, p.n, c.n, span(c.n+1, p.n-1))
		case p.n != c.n+1:
			return c, fmt.Errorf("%s line %d: entry %d follows entry %d: an entry was removed or moved", name, line, p.n, c.n)
		case p.prev != c.head && line == 1:
			return c, fmt.Errorf("%s line 1 (entry %d): it does not name the last hash of the file before: the chain is broken between files (a file was replaced or rewritten)", name, p.n)
		case p.prev != c.head:
			return c, fmt.Errorf("%s line %d (entry %d): its prev does not match the entry before: the chain is broken", name, line, p.n)
		}
		if p.recomputed != p.hash {
			return c, fmt.Errorf("%s line %d (entry %d): hash mismatch: the entry was edited", name, line, p.n)
		}
		if c.fileEntries == 0 {
			c.fileFirst, c.fileFirstPrev, c.fileStart = p.n, p.prev, p.time()
		}
		if p.category == "audit" && p.typ == "pruned" {
			if m := pruneRE.FindStringSubmatch(p.detail); m != nil {
				n, _ := strconv.ParseUint(m[1], 10, 64)
				c.prune = &mark{n: n, prev: m[2]}
			}
		}
		if c.lookFor != "" && p.hash == c.lookFor {
			c.lookN = p.n
		}
		c.prevHead, c.head, c.n = c.head, p.hash, p.n
		c.seen[p.hash] = p.n
		c.fileEntries++
		c.entries++
		c.valid += int64(len(b))
	}
	return c, nil
}

// checkStart checks where the log starts: at entry 1 from the genesis
// hash, or where the last pruning said. It returns a note for a pruning
// that stopped before it removed every file it named.
func (c *chain) checkStart(where string) (string, error) {
	switch {
	case !c.started:
		return "", nil
	case c.firstN == 1 && c.firstPrev == genesis:
		if c.prune != nil {
			return fmt.Sprintf("a pruning to entry %d did not remove its files (a stop in the middle); the next rotation prunes again", c.prune.n), nil
		}
		return "", nil
	case c.firstN == 1 || c.firstN == 0:
		return "", fmt.Errorf("%s: entry %d does not start from the genesis hash: the chain was rewritten", where, c.firstN)
	case c.prune == nil:
		return "", fmt.Errorf("%s: the log starts at entry %d, and no pruning entry accounts for %s: the oldest file or the first entries were removed",
			where, c.firstN, span(1, c.firstN-1))
	case c.prune.n == c.firstN && c.prune.prev == c.firstPrev:
		return "", nil
	case c.prune.n > c.firstN:
		return fmt.Sprintf("a pruning to entry %d did not remove all its files (a stop in the middle); the next rotation prunes again", c.prune.n), nil
	case c.prune.n == c.firstN:
		return "", fmt.Errorf("%s: entry %d does not follow the hash the last pruning named: the chain was rewritten", where, c.firstN)
	default:
		return "", fmt.Errorf("%s: the log starts at entry %d, but the last pruning left it starting at entry %d: %s removed since",
			where, c.firstN, c.prune.n, span(c.prune.n, c.firstN-1))
	}
}

// behind says how many entries a head ("N HASH" or HASH) is behind the
// chain's end: 0 at the end, -1 when it names no entry of the last file.
func (c *chain) behind(want string) int {
	wn, wh := splitHead(want)
	if wh == c.head && (wn == 0 || wn == c.n) {
		return 0
	}
	if m, ok := c.seen[wh]; ok && m < c.n && (wn == 0 || wn == m) {
		return int(c.n - m)
	}
	return -1
}

// Result of a verification.
type Result struct {
	Entries uint64 // entries checked
	First   uint64 // the oldest entry kept (1 unless pruned)
	Last    uint64
	Files   int
	Head    string
	Note    string // a crash's trace that is not a break
}

// Verify checks the chain of the log at path across its rotated files and
// the active one. want, when not empty, is a head published elsewhere
// ("N HASH" or just HASH): the chain must end there. Otherwise the kept
// head file is used when it exists.
func Verify(path string, key []byte, want string) (Result, error) {
	mac := macFor(key)
	names, err := listRotated(path)
	if err != nil {
		return Result{}, err
	}
	dir := filepath.Dir(path)
	var files []string
	for _, n := range names {
		files = append(files, filepath.Join(dir, n))
	}
	active := false
	if _, err := os.Stat(path); err == nil {
		files, active = append(files, path), true
	}
	if len(files) == 0 {
		if _, err := os.Stat(HeadFile(path)); err != nil {
			return Result{}, fmt.Errorf("%s: no audit log here: %w", path, err)
		}
	}
	c := chain{head: genesis}
	if want != "" {
		_, c.lookFor = splitHead(want)
	}
	for i, f := range files {
		isActive := active && i == len(files)-1
		if c, err = scanFile(f, mac, c, i > 0, isActive); err != nil {
			return Result{}, err
		}
		if !isActive && (c.fileEntries == 0 || filepath.Base(f) != rotatedName(path, c.fileFirst)) {
			return Result{}, fmt.Errorf("rotated file %s: empty, or named for another first entry (renamed or edited)", filepath.Base(f))
		}
	}
	if c.torn > 0 {
		return Result{}, fmt.Errorf("entry %d: truncated entry (no newline)", c.n+1)
	}
	res := Result{Entries: c.entries, First: c.firstN, Last: c.n, Files: len(files), Head: c.head}
	if res.Note, err = c.checkStart(filepath.Base(path)); err != nil {
		return res, err
	}
	if want != "" {
		return res, c.published(want, &res)
	}
	b, err := os.ReadFile(HeadFile(path))
	if err != nil {
		return res, nil
	}
	kept := strings.TrimSpace(string(b))
	switch behind := c.behind(kept); {
	case behind == 0:
	case behind > 0:
		res.Note = strings.TrimPrefix(res.Note+"; ", "; ") + fmt.Sprintf("the kept head is %s behind (a stop between entry %d and its head); the collector moves it on at its next start", entries(behind), c.n)
	default:
		return res, fmt.Errorf("the chain ends at entry %d %s, but the kept head %s is %s: entries were removed from the end or the chain was rewritten", c.n, c.head, HeadFile(path), kept)
	}
	return res, nil
}

// published checks a head seen on the platform ("N HASH" or HASH): the
// chain must hold that entry; entries written after it are said.
func (c *chain) published(want string, res *Result) error {
	wn, _ := splitHead(want)
	switch {
	case c.lookN == 0 && wn != 0 && wn < c.firstN:
		return fmt.Errorf("the published head %s is entry %d, which was pruned (the log starts at entry %d): it cannot be checked here", want, wn, c.firstN)
	case c.lookN == 0:
		return fmt.Errorf("the published head %s is not in the chain (which ends at entry %d %s): entries were removed from the end or the chain was rewritten", want, c.n, c.head)
	case wn != 0 && wn != c.lookN:
		return fmt.Errorf("the published head %s names entry %d, but that hash is entry %d here: the chain was rewritten", want, wn, c.lookN)
	case c.lookN < c.n:
		res.Note = strings.TrimPrefix(res.Note+"; ", "; ") + fmt.Sprintf("the published head is entry %d; %s were written after it", c.lookN, entries(int(c.n-c.lookN)))
	}
	return nil
}

func splitHead(want string) (uint64, string) {
	if i := strings.IndexByte(want, ' '); i > 0 {
		n, _ := strconv.ParseUint(want[:i], 10, 64)
		return n, want[i+1:]
	}
	return 0, want
}

func entries(n int) string {
	if n == 1 {
		return "one entry"
	}
	return fmt.Sprintf("%d entries", n)
}

// span names entries a to b.
func span(a, b uint64) string {
	if a >= b {
		return fmt.Sprintf("entry %d", a)
	}
	return fmt.Sprintf("entries %d-%d", a, b)
}
