//go:build linux

package buffer

import (
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// pageOut asks the kernel to reclaim the pages of the database's value-log
// and table files that this process has mapped.
//
// Badger reads and writes its value log through a shared mapping of each
// file and keeps every file mapped until value-log GC deletes it, so every
// page a message was written to stays in the collector's resident set:
// at the reference load (10,000 readings/s, about 190 KB/s of records) the
// RSS grew by 11 MB a minute, without bound until retention removes the
// oldest file. The pages are the page cache's, already synced; nothing
// needs them in memory (new messages are sent from the recent cache, an
// outage's backlog is read back once). MADV_PAGEOUT drops them from the
// mapping and the page cache; a page still dirty is left to its msync, and
// a page read later is read back from the file, so it loses nothing. It
// is only a hint: on a range that was unmapped and reused meanwhile it
// reclaims nothing it should not (anonymous memory without swap stays).
//
// Memtable write-ahead logs (.mem) are left alone: they are written at
// every commit and freed when the memtable is flushed.
func (s *Badger) pageOut() {
	if pageOutUnsupported.Load() {
		return
	}
	proc, err := procfs.Self()
	if err != nil {
		return
	}
	maps, err := proc.ProcMaps()
	if err != nil {
		return
	}
	// /proc/self/maps names files by their absolute, resolved path.
	dir, err := filepath.Abs(s.dbDir())
	if err != nil {
		return
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	tried, refused := 0, 0
	for _, m := range maps {
		if !pagedOutFile(m.Pathname, dir) {
			continue
		}
		tried++
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.StartAddr, m.EndAddr-m.StartAddr, unix.MADV_PAGEOUT)
		if errno == unix.EINVAL {
			refused++
		}
	}
	if tried > 0 && refused == tried {
		// Linux before 5.4 has no MADV_PAGEOUT (or every mapping is
		// locked, e.g. under mlockall). The RSS then grows with the
		// value log, as it did before this was added.
		pageOutOnce.Do(func() {
			s.log.Info("buffer: the kernel refuses MADV_PAGEOUT (Linux < 5.4, or locked memory); badger's mapped files stay in the resident set")
		})
		pageOutUnsupported.Store(true)
	}
}

// pagedOutFile says whether a mapped file is one pageOut gives back: a
// value-log file or a table of the database in dir.
func pagedOutFile(path, dir string) bool {
	return strings.HasPrefix(path, dir+string(filepath.Separator)) &&
		(strings.HasSuffix(path, ".vlog") || strings.HasSuffix(path, ".sst"))
}

var (
	pageOutUnsupported atomic.Bool
	pageOutOnce        sync.Once
)
