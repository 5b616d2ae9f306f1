package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	cmd := exec.Command(collectorBin, "validate", "-c", big)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil || !strings.Contains(string(out), "ok: 50 buses, 200 devices, 10000 points, 1 interlocks") {
		t.Fatalf("10,000 points: %v\n%.2000s", err, out)
	}
	// CPU time, not wall time, is the measure: the machine may be loaded.
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	t.Logf("edgecollector validate, 10,000 points: %v CPU, %v wall", cpu.Round(time.Millisecond), took.Round(time.Millisecond))
	if cpu > 10*time.Second {
		t.Errorf("validate took %v of CPU; want seconds", cpu)
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

// TestValidateWarns: a config that loads but should not be run as it is
// (TLS without certificate checks) validates with exit 0 and a warning on
// stderr, apart from the ok line on stdout.
func TestValidateWarns(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "insecure.yaml", "gateway: {enterprise: E1, code: G1}\nbuffer: {dir: /tmp/x}\n"+
		"uplink: {mqtt: {url: \"ssl://127.0.0.1:8883\", tls: {insecure_skip_verify: true}}}\n")
	cmd := exec.Command(collectorBin, "validate", "-c", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("want exit 0, got %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if want := path + ": ok: 0 buses, 0 devices, 0 points, 0 interlocks, 1 warning(s)\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	if want := path + ":3:74: warning: uplink.mqtt.tls.insecure_skip_verify: the broker's certificate is not checked"; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to start with %q", stderr.String(), want)
	}
}

// TestRunWarnsOnce: run logs the config's warning once, as a WARN, when it
// starts (and keeps running).
func TestRunWarnsOnce(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the uplink keeps reconnecting
	path := writeFile(t, dir, "insecure.yaml", fmt.Sprintf("gateway: {enterprise: E1, code: G1}\nbuffer: {dir: %q}\n"+
		"uplink: {mqtt: {url: \"ssl://%s\", tls: {insecure_skip_verify: true}}}\n", filepath.Join(dir, "data"), addr))
	cmd := exec.Command(collectorBin, "run", "-c", path)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "insecure_skip_verify") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	out := stderr.String()
	var warns []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "insecure_skip_verify") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "level=WARN") || !strings.Contains(warns[0], "certificate is not checked") {
		t.Fatalf("want one WARN naming insecure_skip_verify, got %d:\n%s", len(warns), out)
	}
	t.Log(warns[0])
}

// lockedBuffer is a bytes.Buffer safe for a process's writes and the
// test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
