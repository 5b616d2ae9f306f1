package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

var (
	readmeMbpoll = regexp.MustCompile("mbpoll -m [^`\n]+")
	bannerMbpoll = regexp.MustCompile(`try: (mbpoll [^\n]+?)\s{2,}\(`)
	bannerReset  = regexp.MustCompile(`after the leak: (edgecollector reset [^\n]+?)\s{2,}\(`)
)

// readmeShell returns the ./edgecollector lines of the README's sh blocks
// (comments cut).
func readmeShell(readme string) []string {
	var out []string
	for _, block := range strings.Split(readme, "```sh\n")[1:] {
		for _, line := range strings.Split(block[:strings.Index(block, "```")], "\n") {
			line, _, _ = strings.Cut(line, "#")
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "./edgecollector ") {
				out = append(out, line)
			}
		}
	}
	return out
}

// TestReadmeCommandsAgainstDemo runs every mbpoll command the README shows
// and the one the demo's banner prints against a running demo (its ports
// moved to free ones), then, after the leak, the README's reset and status
// commands on the demo's control socket.
func TestReadmeCommandsAgainstDemo(t *testing.T) {
	testpeer.Need(t, "mbpoll")
	b, err := os.ReadFile(testpeer.RepoFile("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	mbpolls := readmeMbpoll.FindAllString(readme, -1)
	shell := readmeShell(readme)
	if len(mbpolls) < 2 || len(shell) < 4 {
		t.Fatalf("README: %d mbpoll commands, %d ./edgecollector lines; want the demo's reads and its reset", len(mbpolls), len(shell))
	}
	plc := testpeer.FreePort(t)
	gas := testpeer.FreePort(t)
	brk := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	web := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	data := filepath.Join(t.TempDir(), "edgedemo")
	subst := strings.NewReplacer("-p 15020", fmt.Sprintf("-p %d", plc), "-p 15021", fmt.Sprintf("-p %d", gas), "/tmp/edgedemo", data)
	var demoArgs []string
	for _, l := range shell {
		if strings.HasPrefix(l, "./edgecollector demo ") {
			demoArgs = strings.Fields(subst.Replace(l))[1:]
		}
	}
	if demoArgs == nil {
		t.Fatal("README shows no ./edgecollector demo --data line")
	}
	demoArgs = append(demoArgs, "--plc", fmt.Sprintf("127.0.0.1:%d", plc), "--gas", fmt.Sprintf("127.0.0.1:%d", gas), "--mqtt", brk,
		"--status", web, "--for", "150s", "--quiet")
	demo := testpeer.Start(t, collectorBin, demoArgs...)
	demo.WaitOutput(t, "after the leak:", 10*time.Second)
	testpeer.WaitPort(t, fmt.Sprintf("127.0.0.1:%d", gas), 10*time.Second)
	testpeer.WaitPort(t, fmt.Sprintf("127.0.0.1:%d", plc), 10*time.Second)
	m := bannerMbpoll.FindStringSubmatch(demo.Output())
	if m == nil {
		t.Fatalf("the banner prints no mbpoll command:\n%s", demo.Output())
	}
	cmds := append(mbpolls, m[1])
	for _, c := range cmds {
		args := strings.Fields(subst.Replace(c))
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		v := mbpollValue.FindSubmatch(out)
		if err != nil || v == nil || strings.Contains(string(out), "Illegal") {
			t.Errorf("%s: %v\n%s", c, err, out)
			continue
		}
		val, _ := strconv.ParseFloat(string(v[1]), 64)
		switch {
		case strings.Contains(c, "-t 3"): // GT-101 in 4-20 mA counts
			if val < 4000 || val > 20000 {
				t.Errorf("%s: %v, want 4-20 mA counts (4000-20000)", c, val)
			}
		case strings.Contains(c, "-t 0"): // the valve coil, open before the leak
			if val != 1 {
				t.Errorf("%s: %v, want 1 (open) before the leak", c, val)
			}
		}
		t.Logf("%s → %v", c, val)
	}
	if r := bannerReset.FindStringSubmatch(demo.Output()); r == nil || r[1] != "edgecollector reset --socket "+filepath.Join(data, "control.sock")+" ESD-101" {
		t.Errorf("the banner's reset command %q does not name the demo's socket %s", r, filepath.Join(data, "control.sock"))
	}

	run := func(line string) (string, error) {
		args := strings.Fields(subst.Replace(line))
		out, err := exec.Command(collectorBin, args[1:]...).CombinedOutput()
		return string(out), err
	}
	var reset, status string
	for _, l := range shell {
		if strings.Contains(l, "/tmp/edgedemo/control.sock") && strings.HasPrefix(l, "./edgecollector reset ") {
			reset = l
		}
		if strings.Contains(l, "/tmp/edgedemo/control.sock") && strings.HasPrefix(l, "./edgecollector status ") {
			status = l
		}
	}
	if reset == "" || status == "" {
		t.Fatalf("README lacks the demo's reset and status commands on /tmp/edgedemo/control.sock: %q", shell)
	}
	tripped := func() (bool, string) {
		out, err := run(status)
		var st struct {
			Interlocks []struct {
				Name    string `json:"name"`
				Tripped bool   `json:"tripped"`
			} `json:"interlocks"`
		}
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("%s: %v\n%.500s", status, err, out)
		}
		for _, il := range st.Interlocks {
			if il.Name == "ESD-101" {
				return il.Tripped, out
			}
		}
		t.Fatalf("%s: no ESD-101 in\n%.500s", status, out)
		return false, out
	}
	testpeer.Eventually(t, 90*time.Second, "the leak to trip ESD-101", func() bool { ok, _ := tripped(); return ok })
	var last string
	testpeer.Eventually(t, 90*time.Second, "the README's reset to succeed once the gas is below HH", func() bool {
		out, err := run(reset)
		last = out
		return err == nil
	})
	t.Logf("%s → %s", reset, strings.TrimSpace(last))
	if ok, out := tripped(); ok {
		t.Fatalf("after the reset, %s still shows ESD-101 tripped:\n%.800s", status, out)
	}
	if err := demo.Stop(); err != nil {
		t.Fatalf("demo did not stop cleanly: %v", err)
	}
}
