package latchfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

func TestRoundTripAndFirstWaveFormat(t *testing.T) {
	dir := t.TempDir()
	f := New(filepath.Join(dir, "interlocks.json"))
	if st, err := f.Load(); err != nil || len(st.Latched) != 0 {
		t.Fatalf("missing file: %+v %v", st, err)
	}
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	if err := f.Save(edge.LatchState{Latched: map[string]time.Time{"ESD-101": at}, Bypassed: []string{"LSHH"}}); err != nil {
		t.Fatal(err)
	}
	st, err := f.Load()
	if err != nil || !st.Latched["ESD-101"].Equal(at) || len(st.Bypassed) != 1 {
		t.Fatalf("round trip: %+v %v", st, err)
	}
	// The first wave's file (written by edge itself) still loads.
	os.WriteFile(f.Path, []byte(`{"latched": {"ESD-T101-inlet": "2026-11-20T10:00:00+08:00"}}`), 0o600)
	if st, err = f.Load(); err != nil || st.Latched["ESD-T101-inlet"].IsZero() {
		t.Fatalf("first-wave file: %+v %v", st, err)
	}
	os.WriteFile(f.Path, []byte(`{"latched": {`), 0o600)
	if _, err = f.Load(); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("torn file: %v", err)
	}
	if kept, _ := filepath.Glob(f.Path + ".unreadable-*"); len(kept) != 1 {
		t.Fatalf("torn file not kept aside: %v", kept)
	}
	if st, err := f.Load(); err != nil || len(st.Latched) != 0 {
		t.Fatalf("after moving the torn file aside: %+v %v", st, err)
	}
}
