package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/config/configtest"
)

// TestBigConfigValidates: 10,000 points written out, without a single
// alias, are a legitimate config and validate in seconds (issue 16: they
// failed with "expands to more than 200000 values" and 12,358 spurious
// "required" errors).
func TestBigConfigValidates(t *testing.T) {
	data := configtest.Plant(10000)
	start := time.Now()
	cfg, err := Parse("big.yaml", data)
	took := time.Since(start)
	if err != nil {
		ps, _ := AsProblems(err)
		t.Fatalf("a 10,000-point config (%d bytes) is refused with %d problems, the first: %v", len(data), len(ps), ps[0])
	}
	if len(cfg.Points) != 10000 {
		t.Fatalf("got %d points", len(cfg.Points))
	}
	t.Logf("10,000 points, %d KiB: validated in %v", len(data)>>10, took)
	if took > 60*time.Second { // wall time on a loaded machine; the CPU bound is in cmd's TestValidateBigConfig
		t.Errorf("validating 10,000 points took %v; want seconds", took)
	}
}

// TestAliasBomb: aliases that expand a small file into a huge tree are
// refused with that one problem, before the decoder does the work and
// without the "required" errors of everything it did not decode.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x: &r [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("1")
	}
	b.WriteString("]\npoints:\n")
	for range 2000 {
		b.WriteString("  - {code: P, raw_range: *r}\n")
	}
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	ps, _ := AsProblems(err)
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "aliases expand to more than") {
		t.Fatalf("want exactly the alias problem, got %d problems: %v", len(ps), err)
	}
	if ps[0].Line < 3 {
		t.Errorf("want the problem placed at an alias, got line %d", ps[0].Line)
	}
	if d := time.Since(start); d > 30*time.Second { // it takes well under a second; wall time on a loaded machine
		t.Errorf("refusing the bomb took %v", d)
	}
}

// TestAliasesWithinBudget: anchors used the usual way (one shared block per
// point) are fine even on a big plant.
func TestAliasesWithinBudget(t *testing.T) {
	data := configtest.Plant(2000)
	data = bytes.Replace(data, []byte("points:\n"), []byte("std: &std {H: 17.0, HH: 18.5, hysteresis: 0.05}\npoints:\n"), 1)
	data = bytes.ReplaceAll(data, []byte("alarms: {LL: 0.5, L: 1.0, H: 17.0, HH: 18.5, hysteresis: 0.05}"), []byte("alarms: *std"))
	_, err := Parse("anchors.yaml", data)
	ps, _ := AsProblems(err)
	// std is not a key of the schema: that one problem, nothing about aliases.
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "unknown key") {
		t.Fatalf("want only the unknown key std, got %v", err)
	}
}

// TestSizeCap: a file over 16 MiB is refused before it is parsed, whether
// its size is seen by Stat or only while reading.
func TestSizeCap(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	comment := bytes.Repeat([]byte("# padding padding padding padding padding padding padding padding\n"), (MaxFileSize/66)+10)
	if err := os.WriteFile(big, append(configtest.Plant(10), comment...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	ps, ok := AsProblems(err)
	if !ok || len(ps) != 1 || !strings.Contains(ps[0].Msg, "at most 16 MiB") {
		t.Fatalf("want the size problem alone, got %v", err)
	}
	if _, err := Parse("big.yaml", append(configtest.Plant(10), comment...)); err == nil || !strings.Contains(err.Error(), "at most 16 MiB") {
		t.Fatalf("Parse: want the size problem, got %v", err)
	}
	// Exactly at the cap is accepted.
	at := append(configtest.Plant(10), comment...)[:0]
	at = append(at, configtest.Plant(10)...)
	at = append(at, bytes.Repeat([]byte("#"), MaxFileSize-len(at)-1)...)
	at = append(at, '\n')
	if err := os.WriteFile(big, at, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err != nil {
		t.Fatalf("a config of exactly %d bytes is refused: %v", len(at), err)
	}
	// A pipe has no size to Stat: the cap holds while reading.
	if _, err := os.Stat("/dev/fd"); err == nil {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer w.Close()
			w.Write(configtest.Plant(10))
			for range MaxFileSize/len(comment) + 2 {
				if _, err := w.Write(comment); err != nil {
					return
				}
			}
		}()
		defer r.Close()
		_, err = Load(fmt.Sprintf("/dev/fd/%d", r.Fd()))
		if err == nil || !strings.Contains(err.Error(), "at most 16 MiB") {
			t.Fatalf("pipe: want the size problem, got %v", err)
		}
	}
}

// BenchmarkParse10000Points: go test ./config -run '^$' -bench Parse10000 -benchmem
func BenchmarkParse10000Points(b *testing.B) {
	data := configtest.Plant(10000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
