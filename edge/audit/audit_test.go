package audit

import (
	"bytes"
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
