package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeLog(t *testing.T, key []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, key)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range []string{"loaded", "raised", "tripped", "reset", "bypassed"} {
		if err := l.Record("interlock", a, "ESD-101", "test", strings.Repeat("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return p
}

func lines(t *testing.T, p string) [][]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func rewrite(t *testing.T, p string, ls [][]byte) {
	var out []byte
	for _, l := range ls {
		out = append(out, l...)
		if !bytes.HasSuffix(l, []byte("\n")) {
			out = append(out, '\n')
		}
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCatchesTampering(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("0123456789abcdef0123")} {
		name := "sha256"
		if key != nil {
			name = "hmac"
		}
		t.Run(name, func(t *testing.T) {
			p := writeLog(t, key)
			if r, err := Verify(p, key, ""); err != nil || r.Entries != 5 {
				t.Fatalf("intact log: %v %+v", err, r)
			}
			cases := map[string]func([][]byte) [][]byte{
				"edited entry": func(ls [][]byte) [][]byte {
					ls[2] = bytes.Replace(ls[2], []byte(`"tripped"`), []byte(`"cleared"`), 1)
					return ls
				},
				"removed entry":      func(ls [][]byte) [][]byte { return append(ls[:1:1], ls[2:]...) },
				"removed last entry": func(ls [][]byte) [][]byte { return ls[:4] },
				"swapped entries":    func(ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls },
			}
			for what, f := range cases {
				t.Run(what, func(t *testing.T) {
					q := writeLog(t, key)
					rewrite(t, q, f(lines(t, q)))
					if _, err := Verify(q, key, ""); err == nil {
						t.Fatalf("%s not detected", what)
					} else {
						t.Log(err)
					}
				})
			}
			t.Run("rewritten chain", func(t *testing.T) {
				q := writeLog(t, key)
				_, published := Verify(q, key, "")
				head, _ := os.ReadFile(HeadFile(q))
				// Forge: a new, shorter, self-consistent log with the same key
				// (the worst case: the key leaked, or there is none).
				os.Remove(q)
				os.Remove(HeadFile(q))
				l, _ := Open(q, key)
				l.Record("interlock", "loaded", "ESD-101", "forger", "")
				l.Close()
				if _, err := Verify(q, key, string(head)); err == nil {
					t.Fatal("rewritten chain matched the published head")
				}
				_ = published
			})
		})
	}
}

func TestOpenContinuesChain(t *testing.T) {
	p := writeLog(t, nil)
	l, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Record("control", "ack", "GT-101", "op", "")
	l.Close()
	if r, err := Verify(p, nil, ""); err != nil || r.Entries != 6 {
		t.Fatalf("%v %+v", err, r)
	}
	if _, err := Verify(p, []byte("wrong key wrong key"), ""); err == nil {
		t.Fatal("verified with the wrong key")
	}
}

// TestCrashTracesAreRepaired: kill -9 between an entry's sync and its
// head's update leaves the kept head one entry behind; a power cut during a
// write leaves a torn last line. Neither stops the next start (the
// collector must start), both are repaired and said, and the chain goes on;
// a removed last entry is still caught.
func TestCrashTracesAreRepaired(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l.Record("control", "reset", fmt.Sprint("ESD-", i), "uid 0", "")
	}
	l.Close()
	head, _ := os.ReadFile(HeadFile(path))
	l, _ = Open(path, nil)
	l.Record("control", "reset", "ESD-4", "uid 0", "")
	l.Close()
	os.WriteFile(HeadFile(path), head, 0o600) // the stop came before the head moved
	if r, err := Verify(path, nil, ""); err != nil || r.Note == "" {
		t.Fatalf("verify with the head one behind: %+v %v", r, err)
	}
	l, err = Open(path, nil)
	if err != nil || !strings.Contains(l.Repaired, "one entry behind") {
		t.Fatalf("open with the head one behind: %v %q", err, l.Repaired)
	}
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"n":5,"ts":"2026-12-01T08:00:00Z","kind":"con`) // power cut mid-write
	f.Close()
	l, err = Open(path, nil)
	if err != nil || !strings.Contains(l.Repaired, "torn last entry") {
		t.Fatalf("open with a torn last line: %v %q", err, l.Repaired)
	}
	if err := l.Record("system", "started", "", "", ""); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if r, err := Verify(path, nil, ""); err != nil || r.Entries != 5 || r.Note != "" {
		t.Fatalf("after the repairs: %+v %v", r, err)
	}
	// A removed last entry is still a break, at open and in verify.
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	os.WriteFile(path, []byte(strings.Join(lines[:len(lines)-1], "")), 0o600)
	if _, err := Open(path, nil); err == nil {
		t.Fatal("open accepted a log whose last entry was removed")
	}
	if _, err := Verify(path, nil, ""); err == nil {
		t.Fatal("verify accepted a log whose last entry was removed")
	}
}

// TestEmptyHeadAfterPowerCut: an older release wrote the kept head without
// a sync; a power cut then leaves it empty. That must not stop the next
// start (the collector would not poll): the head is written again.
func TestEmptyHeadAfterPowerCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Record("control", "reset", "ESD-1", "uid 0", "")
	l.Close()
	os.WriteFile(HeadFile(path), nil, 0o600)
	l, err = Open(path, nil)
	if err != nil || !strings.Contains(l.Repaired, "empty") {
		t.Fatalf("open with an empty head: %v %q", err, l.Repaired)
	}
	l.Close()
	if _, err := Verify(path, nil, ""); err != nil {
		t.Fatal(err)
	}
}
