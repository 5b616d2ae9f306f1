package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Small files beside the database (outside badger, so they survive its
// loss): the seq ceiling, the last seq issued in memory, the low-water mark
// and the count of opens that did not complete.

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
	return writeFixed(path, fmt.Sprintf("%020d\n", c))
}

// writeFixed writes a fixed-width line, in place when the file has that
// size already.
func writeFixed(path, line string) error {
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
	if err == nil {
		// The rename is durable only once the directory is synced.
		if d, derr := os.Open(filepath.Dir(path)); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	return err
}

// marksFile holds the low-water mark: the lowest seq some uplink has not
// acknowledged, and the last seq issued when it was written (with the
// acknowledgements, at most every second). A recreated database names every
// seq from it as lost.
const marksFile = "seq.lowwater"

type marks struct {
	low, last uint64
}

func readMarks(dir string) (marks, error) {
	p := filepath.Join(dir, marksFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return marks{}, nil
	}
	if err != nil {
		return marks{}, fmt.Errorf("buffer: read %s: %w", p, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return marks{}, fmt.Errorf("buffer: %s is unreadable (%q); it must hold two numbers", p, b)
	}
	low, err1 := strconv.ParseUint(f[0], 10, 64)
	last, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return marks{}, fmt.Errorf("buffer: %s is unreadable (%q); it must hold two numbers", p, b)
	}
	return marks{low, last}, nil
}

func writeMarks(dir string, m marks) error {
	return writeFixed(filepath.Join(dir, marksFile), fmt.Sprintf("%020d %020d\n", m.low, m.last))
}

// openingFile counts opens of the database that have not completed.
const openingFile = "db.opening"

func openAttempts(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, openingFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func countOpenAttempt(dir string) {
	writeFixed(filepath.Join(dir, openingFile), fmt.Sprintf("%020d\n", openAttempts(dir)+1))
}

func clearOpenAttempts(dir string) { os.Remove(filepath.Join(dir, openingFile)) }
