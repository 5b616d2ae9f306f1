//go:build linux

package buffer

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// TestPageOutGivesBackValueLogPages: badger writes the value log through a
// shared mapping and keeps every file mapped, so each page written stays in
// the resident set (the collector's RSS grew 11 MB a minute at the
// reference load). pageOut gives the pages back, and everything still reads
// back from the files.
func TestPageOutGivesBackValueLogPages(t *testing.T) {
	s := openAt(t, t.TempDir(), BadgerOpts{})
	defer s.Close()
	now := time.Now()
	const n = 400 // 400 messages of 1,000 readings: ~20 MB of value log
	for b := 0; b < n; b += 20 {
		msgs := make([]*edge.Message, 20)
		for i := range msgs {
			msgs[i] = rt(now.Add(time.Duration(b+i)*time.Second), 1000)
		}
		if err := s.Append(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	before := mappedRSS(t, s.dbDir())
	if before < 8<<20 {
		t.Fatalf("only %d KB of the database mapped and resident after writing it: the test proves nothing", before>>10)
	}
	s.pageOut()
	after := mappedRSS(t, s.dbDir())
	t.Logf("resident pages of the database's mapped files: %d KB after writing, %d KB after pageOut", before>>10, after>>10)
	if after > 1<<20 {
		t.Fatalf("%d KB still resident after pageOut (%d KB before)", after>>10, before>>10)
	}
	if got, _ := s.Unacked("mqtt", 1, 0, n+1); len(got) != n || len(got[n-1].Readings) != 1000 {
		t.Fatalf("read back %d messages after pageOut, want %d", len(got), n)
	}
}

// mappedRSS sums the resident size of this process's mappings of .vlog and
// .sst files under dir.
func mappedRSS(t *testing.T, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err) // every Linux has it
	}
	var sum int64
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			path := ""
			if len(f) >= 6 {
				path = f[5]
			}
			in = pagedOutFile(path, dir)
			continue
		}
		if in && len(f) == 3 && f[0] == "Rss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			sum += kb << 10
		}
	}
	return sum
}
