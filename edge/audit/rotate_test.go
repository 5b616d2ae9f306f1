package audit

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var manyEntries = flag.Int("audit.entries", 5000, "entries TestManyEntriesAcrossFiles writes (the full proof is 100000)")

// clock is a fake time that moves step on every reading.
type clock struct {
	t    time.Time
	step time.Duration
}

func (c *clock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func smallOpts(t *testing.T, key []byte) (Opts, *clock) {
	clk := &clock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), step: time.Second}
	o := DefaultOpts()
	o.Path, o.Key, o.Now = filepath.Join(t.TempDir(), "audit.log"), key, clk.now
	o.MaxFileBytes, o.MaxTotalBytes, o.MaxFileAge = 4<<10, 1<<30, 0
	return o, clk
}

func fill(t *testing.T, o Opts, n int) {
	t.Helper()
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range n {
		if _, err := l.Write(Rec{Source: "uid 0 (pid 7) via control socket", Category: "control", Type: "reset", Subject: fmt.Sprintf("ESD-%d", i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
}

// files lists the log's files, oldest first, the active one last.
func files(t *testing.T, path string) []string {
	t.Helper()
	names, err := listRotated(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(filepath.Dir(path), n))
	}
	return append(out, path)
}

func firstLine(t *testing.T, p string) parsed {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	e, err := parseLine(append(line, '\n'), sha256mac)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var sha256mac = macFor(nil)

// TestRotationCarriesTheChain: every new file starts with a rotated entry
// whose prev is the last hash of the file before, and the whole log
// verifies across the files.
func TestRotationCarriesTheChain(t *testing.T) {
	o, _ := smallOpts(t, nil)
	fill(t, o, 200)
	fs := files(t, o.Path)
	if len(fs) < 4 {
		t.Fatalf("200 entries in 4 KiB files made %d files", len(fs))
	}
	for i := 1; i < len(fs); i++ {
		last, err := lastEntry(fs[i-1], sha256mac)
		if err != nil {
			t.Fatal(err)
		}
		first := firstLine(t, fs[i])
		if first.category != "audit" || first.typ != "rotated" || first.prev != last.hash || first.n != last.n+1 {
			t.Fatalf("%s starts with %+v, want a rotated entry %d after hash %s", fs[i], first, last.n+1, last.hash)
		}
		if st, _ := os.Stat(fs[i-1]); st.Size() > o.MaxFileBytes+1024 {
			t.Errorf("%s is %d bytes, rotation at %d", fs[i-1], st.Size(), o.MaxFileBytes)
		}
	}
	r, err := Verify(o.Path, nil, "")
	if err != nil || r.First != 1 || r.Files != len(fs) || r.Entries != 200+uint64(len(fs)-1) || r.Note != "" {
		t.Fatalf("verify: %+v %v", r, err)
	}
	// Opened again, the chain goes on in the active file.
	fill(t, o, 1)
	if r2, err := Verify(o.Path, nil, ""); err != nil || r2.Last != r.Last+1 {
		t.Fatalf("after a reopen: %+v %v", r2, err)
	}
}

// TestRotationByAge: the active file is rotated once its first entry is
// max_file_age old, and rotated files older than max_age are pruned.
func TestRotationByAge(t *testing.T) {
	o, clk := smallOpts(t, nil)
	o.MaxFileBytes, o.MaxFileAge, o.MaxAge = 1<<20, time.Hour, 3*time.Hour
	clk.step = 10 * time.Minute
	fill(t, o, 60) // 10 h
	fs := files(t, o.Path)
	r, err := Verify(o.Path, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.First == 1 || len(fs) > 5 || len(fs) < 3 {
		t.Fatalf("10 h in hourly files, 3 h kept: %d files, %+v", len(fs), r)
	}
	for _, f := range fs[:len(fs)-1] {
		first := firstLine(t, f)
		if clk.t.Sub(first.time()) > 5*time.Hour {
			t.Errorf("%s from %s kept past max_age 3h (now %s)", f, first.ts, clk.t)
		}
	}
	log, _ := os.ReadFile(o.Path)
	if !bytes.Contains(log, []byte(`"type":"pruned"`)) || !bytes.Contains(log, []byte("older than 3h0m0s")) {
		t.Fatalf("no pruning entry in the active file:\n%s", log)
	}
}

// TestPruningIsAnEntry: the size cap prunes the oldest files, the pruning
// is an entry naming where the log now starts, the store stays under its
// cap, and a file removed beyond what the pruning said is still caught.
func TestPruningIsAnEntry(t *testing.T) {
	o, _ := smallOpts(t, nil)
	o.MaxTotalBytes = 64 << 10 // 16 files: 90 % is reached before each pruning
	var warned []Usage
	o.OnNearFull = func(u Usage) { warned = append(warned, u) }
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	prunes := 0
	for i := range 1000 {
		if _, err := l.Write(Rec{Category: "alarm", Type: "raised", Subject: fmt.Sprint("GT-", i), Detail: "seq 9: HH 55 %LEL"}); err != nil {
			t.Fatal(err)
		}
		if u := l.Usage(); u.Bytes > o.MaxTotalBytes+1024 { // one entry over at most
			t.Fatalf("after entry %d the store is %d bytes, over its cap %d", i, u.Bytes, o.MaxTotalBytes)
		}
	}
	u := l.Usage()
	l.Close()
	all, _ := os.ReadFile(o.Path)
	for _, f := range files(t, o.Path)[:len(files(t, o.Path))-1] {
		b, _ := os.ReadFile(f)
		all = append(all, b...)
	}
	prunes = bytes.Count(all, []byte(`"type":"pruned"`))
	r, err := Verify(o.Path, nil, "")
	if err != nil || r.First == 1 || u.First != r.First {
		t.Fatalf("verify after pruning: %+v %v (usage %+v)", r, err, u)
	}
	if prunes == 0 || len(warned) < prunes {
		t.Fatalf("%d prunes, %d near-full warnings: want a warning before each", prunes, len(warned))
	}
	t.Logf("1000 entries: %d prunes, %d warnings, log starts at entry %d, %+v", prunes, len(warned), r.First, u)
	// The oldest kept file removed: the pruning entry does not cover it.
	fs := files(t, o.Path)
	os.Remove(fs[0])
	if _, err := Verify(o.Path, nil, ""); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("oldest kept file removed: %v", err)
	}
}

// TestTamperAcrossFiles: removing or editing any file or entry, in the
// first, a middle, the last rotated or the active file, is caught.
func TestTamperAcrossFiles(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("0123456789abcdef0123")} {
		name := map[bool]string{true: "sha256", false: "hmac"}[key == nil]
		t.Run(name, func(t *testing.T) {
			tamper(t, key)
		})
	}
}

func tamper(t *testing.T, key []byte) {
	tmpl, _ := smallOpts(t, key)
	fill(t, tmpl, 150)
	if n := len(files(t, tmpl.Path)); n < 4 {
		t.Fatalf("%d files", n)
	}
	// mk copies the written log for one case.
	mk := func(t *testing.T) (Opts, []string) {
		o := tmpl
		o.Path = filepath.Join(t.TempDir(), "audit.log")
		for _, f := range append(files(t, tmpl.Path), HeadFile(tmpl.Path)) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(filepath.Dir(o.Path), filepath.Base(f)), b, 0o600)
		}
		return o, files(t, o.Path)
	}
	editLine := func(p string, i int) {
		ls := lines(t, p)
		was := string(ls[i])
		ls[i] = bytes.Replace(ls[i], []byte(`"result":"ok"`), []byte(`"result":"no"`), 1)
		if string(ls[i]) == was {
			t.Fatalf("the edit changed nothing in %s", was)
		}
		rewrite(t, p, ls)
	}
	dropLine := func(p string, i int) {
		ls := lines(t, p)
		rewrite(t, p, append(ls[:i:i], ls[i+1:]...))
	}
	pick := map[string]func([]string) string{
		"first": func(fs []string) string { return fs[0] }, "middle": func(fs []string) string { return fs[len(fs)/2-1] },
		"last rotated": func(fs []string) string { return fs[len(fs)-2] }, "active": func(fs []string) string { return fs[len(fs)-1] },
	}
	for which, f := range pick {
		cases := map[string]func(p string){
			"file removed":        func(p string) { os.Remove(p) },
			"entry edited":        func(p string) { editLine(p, 1) },
			"first entry edited":  func(p string) { editLine(p, 0) },
			"entry removed":       func(p string) { dropLine(p, 1) },
			"first entry removed": func(p string) { dropLine(p, 0) },
			"last entry removed":  func(p string) { dropLine(p, len(lines(t, p))-1) },
			"field added": func(p string) {
				ls := lines(t, p)
				ls[1] = bytes.Replace(ls[1], []byte(`{"v":2,`), []byte(`{"v":2,"x":1,`), 1)
				rewrite(t, p, ls)
			},
			"file emptied": func(p string) { os.WriteFile(p, nil, 0o600) },
		}
		for what, do := range cases {
			t.Run(which+" "+what, func(t *testing.T) {
				o, fs := mk(t)
				p := f(fs)
				if len(lines(t, p)) < 3 {
					t.Fatalf("the %s file has fewer than 3 entries: the fixture cannot show this case", which)
				}
				do(p)
				_, err := Verify(o.Path, key, "")
				if err == nil {
					t.Fatalf("%s of the %s file (%s) not detected", what, which, filepath.Base(p))
				}
				t.Log(err)
			})
		}
	}
	t.Run("two rotated files swapped", func(t *testing.T) {
		o, fs := mk(t)
		a, b := fs[0], fs[1]
		os.Rename(a, a+".x")
		os.Rename(b, a)
		os.Rename(a+".x", b)
		if _, err := Verify(o.Path, key, ""); err == nil {
			t.Fatal("swapped files not detected")
		}
	})
	t.Run("middle file rewritten as a consistent chain", func(t *testing.T) {
		o, fs := mk(t)
		mid := fs[1]
		prev, _ := lastEntry(fs[0], macFor(key))
		// The forger recomputes the file with a different entry (with the
		// key: the worst case); the next file's first prev no longer fits
		// unless every later file is rewritten too, and then the head.
		ls := lines(t, mid)
		var out [][]byte
		h := prev.hash
		for i, l := range ls {
			p, _ := parseLine(l, macFor(key))
			e := Entry{V: 2, N: p.n, TS: p.ts, ID: fmt.Sprintf("a%d", p.n), Source: "uid 0 (pid 7) via control socket", Category: p.category, Type: p.typ, Result: "ok", Prev: h}
			if i == 2 {
				e.Type = "ack"
			}
			e.Hash = e.sum(macFor(key)())
			b, _ := json.Marshal(e)
			out = append(out, append(b, '\n'))
			h = e.Hash
		}
		rewrite(t, mid, out)
		if _, err := Verify(o.Path, key, ""); err == nil {
			t.Fatal("rewritten middle file not detected")
		}
	})
	t.Run("active file and head removed: the published head catches it", func(t *testing.T) {
		o, fs := mk(t)
		_, head := mustHead(t, o)
		os.Remove(fs[len(fs)-1])
		os.Remove(HeadFile(o.Path))
		if _, err := Verify(o.Path, key, head); err == nil {
			t.Fatal("removed active file not caught against the published head")
		}
	})
}

func mustHead(t *testing.T, o Opts) (uint64, string) {
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n, h := l.Head()
	return n, h
}

// TestOpenRefusesABrokenLink: Open checks the active file against the last
// rotated one, so a removed last rotated file stops the start.
func TestOpenRefusesABrokenLink(t *testing.T) {
	o, _ := smallOpts(t, nil)
	fill(t, o, 150)
	fs := files(t, o.Path)
	os.Remove(fs[len(fs)-2])
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("open after the last rotated file was removed: %v", err)
	}
}

// TestStopInTheMiddleOfARotation: a stop after the rename, before the new
// file's first entry, leaves no active file: the next start finishes the
// rotation and the chain goes on.
func TestStopInTheMiddleOfARotation(t *testing.T) {
	for _, empty := range []bool{false, true} {
		t.Run(map[bool]string{false: "no active file", true: "an empty active file"}[empty], func(t *testing.T) {
			o, _ := smallOpts(t, nil)
			fill(t, o, 10)
			first := firstLine(t, o.Path)
			os.Rename(o.Path, filepath.Join(filepath.Dir(o.Path), rotatedName(o.Path, first.n)))
			if empty {
				os.WriteFile(o.Path, nil, 0o600)
			}
			l, err := New(o)
			if err != nil || !strings.Contains(l.Repaired, "rotation") {
				t.Fatalf("open after a stop mid-rotation: %v %q", err, l.Repaired)
			}
			l.Record("system", "started", "", "", "")
			l.Close()
			if r, err := Verify(o.Path, nil, ""); err != nil || r.Files != 2 || r.Last != 12 {
				t.Fatalf("%+v %v", r, err)
			}
			if e := firstLine(t, o.Path); e.typ != "rotated" {
				t.Fatalf("the new file starts with %+v, want the rotation entry", e)
			}
		})
	}
}

// TestGoldenV1: logs written by the first format (testdata, made by the
// code before format 2) still verify, and go on in format 2.
func TestGoldenV1(t *testing.T) {
	for name, key := range map[string][]byte{"v1.log": nil, "v1-hmac.log": []byte("golden-key-0123456789")} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			for _, s := range []string{"", ".head"} {
				b, err := os.ReadFile(filepath.Join("testdata", name+s))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(p+s, b, 0o600)
			}
			if r, err := Verify(p, key, ""); err != nil || r.Entries != 5 {
				t.Fatalf("golden %s: %+v %v", name, r, err)
			}
			if key != nil {
				if _, err := Verify(p, []byte("another-key-0123456789"), ""); err == nil {
					t.Fatal("verified with the wrong key")
				}
			}
			o := DefaultOpts()
			o.Path, o.Key = p, key
			o.Now = func() time.Time { return time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC) } // within the file's day
			l, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			l.Write(Rec{Source: "uid 0", Category: "control", Type: "reset", Subject: "ESD-101", Result: "refused: condition still present"})
			l.Close()
			if r, err := Verify(p, key, ""); err != nil || r.Entries != 6 {
				t.Fatalf("v1 log continued in v2: %+v %v", r, err)
			}
			ls := lines(t, p)
			ls[3] = bytes.Replace(ls[3], []byte("refused"), []byte("granted"), 1)
			rewrite(t, p, ls)
			if _, err := Verify(p, key, ""); err == nil {
				t.Fatal("an edited v1 entry verified")
			}
		})
	}
}

// TestFailedWriteIsCutOff: an entry that cannot be written leaves nothing
// behind, Write says so, and the log refuses further writes rather than
// writing after a half entry.
func TestFailedWriteIsCutOff(t *testing.T) {
	o, _ := smallOpts(t, nil)
	fill(t, o, 3)
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	l.f.Close() // the descriptor fails under the log, as a dead disk does
	if _, err := l.Write(Rec{Category: "control", Type: "reset", Subject: "ESD-1"}); err == nil || !strings.Contains(err.Error(), "entry 4 not written") {
		t.Fatalf("write on a dead file: %v", err)
	}
	if _, err := l.Write(Rec{Category: "control", Type: "reset", Subject: "ESD-1"}); err == nil {
		t.Fatal("a second write after an uncut failure was accepted")
	}
	l.f = nil
	if r, err := Verify(o.Path, nil, ""); err != nil || r.Last != 3 {
		t.Fatalf("%+v %v", r, err)
	}
}

// TestManyEntriesAcrossFiles writes *manyEntries entries (5,000; the full
// proof: go test ./edge/audit -run TestManyEntriesAcrossFiles -v -args -audit.entries=100000)
// across several files, verifies them, and shows that removing the first,
// a middle or the last rotated file, or editing one entry, is caught.
func TestManyEntriesAcrossFiles(t *testing.T) {
	o, _ := smallOpts(t, []byte("0123456789abcdef0123"))
	o.MaxFileBytes = int64(max(*manyEntries/10, 100)) * 300 // about ten files
	start := time.Now()
	fill(t, o, *manyEntries)
	wrote := time.Since(start)
	start = time.Now()
	r, err := Verify(o.Path, o.Key, "")
	took := time.Since(start)
	if err != nil || r.Last < uint64(*manyEntries) || r.Files < 5 {
		t.Fatalf("%+v %v", r, err)
	}
	t.Logf("%d entries in %d files: written (each synced) in %v, verified in %v", r.Entries, r.Files, wrote, took)
	fs := files(t, o.Path)
	for _, i := range []int{0, len(fs) / 2, len(fs) - 2} {
		b, _ := os.ReadFile(fs[i])
		os.Remove(fs[i])
		if _, err := Verify(o.Path, o.Key, ""); err == nil {
			t.Fatalf("file %d of %d removed: not detected", i+1, len(fs))
		}
		os.WriteFile(fs[i], b, 0o600)
	}
	ls := lines(t, fs[len(fs)/2])
	ls[len(ls)/2] = bytes.Replace(ls[len(ls)/2], []byte(`"reset"`), []byte(`"ack"`), 1)
	rewrite(t, fs[len(fs)/2], ls)
	if _, err := Verify(o.Path, o.Key, ""); err == nil {
		t.Fatal("an edited entry in the middle file not detected")
	}
}

// TestHeadSeveralBehind: when the head file could not be written for a
// few entries (a disk too full for its temporary file) the start moves it
// on rather than refusing; a head ahead of the chain is still a break.
func TestHeadSeveralBehind(t *testing.T) {
	o, _ := smallOpts(t, nil)
	fill(t, o, 5)
	old, _ := os.ReadFile(HeadFile(o.Path))
	fill(t, o, 3)
	os.WriteFile(HeadFile(o.Path), old, 0o600)
	if r, err := Verify(o.Path, nil, ""); err != nil || !strings.Contains(r.Note, "3 entries behind") {
		t.Fatalf("verify: %+v %v", r, err)
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.Repaired, "3 entries behind") {
		t.Fatalf("open: %q", l.Repaired)
	}
	l.Close()
	os.WriteFile(HeadFile(o.Path), []byte("9 "+strings.Repeat("ab", 32)+"\n"), 0o600)
	if _, err := New(o); err == nil {
		t.Fatal("a head that is not in the chain was accepted")
	}
}

// FuzzParseLine: no line read from disk makes the decoder panic, and a
// line it accepts is exactly what it would write.
func FuzzParseLine(f *testing.F) {
	for _, name := range []string{"v1.log", "v1-hmac.log"} {
		b, _ := os.ReadFile(filepath.Join("testdata", name))
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"v":2,"n":1,"ts":"","id":"a1","source":"collector","category":"audit","type":"rotated","result":"ok","prev":"","hash":""}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseLine(b, sha256mac)
		if err != nil {
			return
		}
		if len(b) == 0 || b[len(b)-1] != '\n' || p.recomputed == "" {
			t.Fatalf("accepted %q as %+v", b, p)
		}
	})
}
