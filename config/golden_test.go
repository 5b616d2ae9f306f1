package config

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected.err golden files")

// TestGoldenErrors loads every testdata/<case>/config.yaml and compares the
// full error text with testdata/<case>/expected.err, or, for a case with
// expected.warn instead, checks that the config loads and compares its
// warnings.
func TestGoldenErrors(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/config.yaml")
	if err != nil || len(dirs) < 12 {
		t.Fatalf("want at least 12 golden cases, found %d (%v)", len(dirs), err)
	}
	for _, path := range dirs {
		dir := filepath.Dir(path)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want := filepath.Join(dir, "expected.err")
			cfg, err := Load(path)
			var got string
			if _, statErr := os.Stat(filepath.Join(dir, "expected.warn")); statErr == nil {
				want = filepath.Join(dir, "expected.warn")
				if err != nil {
					t.Fatalf("a warning case must load: %v", err)
				}
				if len(cfg.Warnings) == 0 {
					t.Fatal("config loaded without warnings")
				}
				got = cfg.Warnings.Error() + "\n"
			} else {
				if err == nil {
					t.Fatal("config loaded without error; every golden case is a bad config (or has expected.warn)")
				}
				if _, ok := AsProblems(err); !ok {
					t.Fatalf("error is not Problems: %v", err)
				}
				got = err.Error() + "\n"
			}
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run go test ./config -run Golden -update to create it)", err)
			}
			if got != string(exp) {
				t.Errorf("differ\n--- got\n%s--- want\n%s", got, exp)
			}
		})
	}
}
