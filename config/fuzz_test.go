package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes the loader panic, and a config it accepts has
// the invariants the rest of the collector relies on.
func FuzzParse(f *testing.F) {
	f.Add(Sample)
	f.Add(Demo)
	cases, _ := filepath.Glob("testdata/*/config.yaml")
	for _, c := range cases {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("points: [{code: 1, alarms: {H: .nan}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := AsProblems(err); !ok {
				t.Fatalf("error is not Problems: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range cfg.Points {
			if seen[p.Code] || p.Code == "" {
				t.Fatalf("accepted a duplicate or empty point code %q", p.Code)
			}
			seen[p.Code] = true
			if cfg.Device(p.Device) == nil {
				t.Fatalf("accepted point %q on missing device %q", p.Code, p.Device)
			}
		}
	})
}
