package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/config/configtest"
)

// TestValidateBigConfig: the real binary validates a 10,000-point config
// written like the sample in seconds, and refuses one over 16 MiB before
// parsing it (issue 16).
func TestValidateBigConfig(t *testing.T) {
	dir := t.TempDir()
	big := writeFile(t, dir, "plant-10000.yaml", string(configtest.Plant(10000)))
	start := time.Now()
	out, err := exec.Command(collectorBin, "validate", "-c", big).CombinedOutput()
	took := time.Since(start)
	if err != nil || !strings.Contains(string(out), "ok: 50 buses, 200 devices, 10000 points, 1 interlocks") {
		t.Fatalf("10,000 points: %v\n%.2000s", err, out)
	}
	t.Logf("edgecollector validate, 10,000 points: %v", took)
	if took > 30*time.Second {
		t.Errorf("validate took %v; want seconds", took)
	}

	huge := filepath.Join(dir, "huge.yaml")
	pad := bytes.Repeat([]byte("# padding\n"), config.MaxFileSize/10+1)
	body := append(configtest.Plant(10), pad...)
	writeFile(t, dir, "huge.yaml", string(body))
	out, err = exec.Command(collectorBin, "validate", "-c", huge).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("over 16 MiB: want exit 2, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%s: the file is %d bytes; a config may have at most 16 MiB", huge, len(body))) ||
		!strings.Contains(string(out), "1 problem(s)") {
		t.Errorf("over 16 MiB: want the size problem alone, got:\n%s", out)
	}
}
