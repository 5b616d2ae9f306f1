package collector

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

var (
	metricName = regexp.MustCompile(`edgecollector_[a-z_]+`)
	labelRef   = regexp.MustCompile(`\$labels\.([a-z_]+)`)
)

// fenced returns the bodies of the ```lang blocks of a markdown text.
func fenced(doc, lang string) []string {
	var out []string
	for _, part := range strings.Split(doc, "```"+lang+"\n")[1:] {
		out = append(out, part[:strings.Index(part, "```")])
	}
	return out
}

// TestMetricsDoc checks docs/metrics.md against a running collector's
// /metrics (both uplinks, a tripped interlock): every metric the alert
// rules name is served, with the labels the rules use; every family served
// is in the doc's table; and the doc's sample scrape parses as the text
// exposition format (Prometheus' Python client, when installed).
func TestMetricsDoc(t *testing.T) {
	b, err := os.ReadFile(testpeer.RepoFile("docs/metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	slave := &plantSlave{gas: 600}
	r := runCollector(t, plantConfig(t, startSlave(t, slave), "50", fmt.Sprintf("status: {listen: %q}\n", addr)), Deps{})
	tripped(t, r.Collector)
	testpeer.WaitPort(t, addr, 10*time.Second)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	scrape := string(body)
	served := map[string]string{} // family -> one sample line
	for _, line := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(line, "edgecollector_") {
			name := metricName.FindString(line)
			name = strings.TrimSuffix(strings.TrimSuffix(name, "_sum"), "_count")
			if _, ok := served[name]; !ok {
				served[name] = line
			}
		}
	}
	rules := fenced(doc, "yaml")
	if len(rules) != 1 || !strings.Contains(rules[0], "alert: EdgecollectorDeviceDown") || !strings.Contains(rules[0], "alert: EdgecollectorBacklogOld") {
		t.Fatalf("docs/metrics.md: want one yaml block with the two alert rules, found %d blocks", len(rules))
	}
	for _, rule := range strings.Split(rules[0], "- alert: ")[1:] {
		names := metricName.FindAllString(rule, -1)
		if len(names) == 0 {
			t.Errorf("rule %q names no metric", firstLineOf(rule))
		}
		for _, n := range names {
			line, ok := served[n]
			if !ok {
				t.Errorf("rule %s: %s is not served by /metrics", firstLineOf(rule), n)
				continue
			}
			for _, l := range labelRef.FindAllStringSubmatch(rule, -1) {
				if l[1] == "instance" || l[1] == "job" || n == "edgecollector_uptime_seconds" {
					continue // added by Prometheus; uptime is only the guard
				}
				if !strings.Contains(line, l[1]+`="`) {
					t.Errorf("rule %s uses label %s, which %s does not carry: %s", firstLineOf(rule), l[1], n, line)
				}
			}
		}
	}
	for n := range served {
		if !strings.Contains(doc, "| `"+n+"` |") {
			t.Errorf("%s is served but not in docs/metrics.md's table", n)
		}
	}
	samples := fenced(doc, "text")
	if len(samples) != 1 || !strings.Contains(samples[0], "edgecollector_uplink_backlog{uplink=") {
		t.Fatal("docs/metrics.md: want one text block with a sample scrape")
	}
	for _, line := range strings.Split(samples[0], "\n") {
		if n := metricName.FindString(line); n != "" && !strings.HasPrefix(line, "#") {
			n = strings.TrimSuffix(strings.TrimSuffix(n, "_sum"), "_count")
			if _, ok := served[n]; !ok {
				t.Errorf("the sample scrape shows %s, which /metrics no longer serves", n)
			}
		}
	}
	if err := exec.Command(testpeer.Python, "-c", "import prometheus_client").Run(); err != nil {
		msg := "python3-prometheus-client is not installed (apt-get install -y python3-prometheus-client)"
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and a test peer is missing: " + msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(testpeer.Python, "-c", `import sys
from prometheus_client.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(sys.stdin.read()))
print(len(fams))`)
	cmd.Stdin = strings.NewReader(samples[0])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the sample scrape does not parse: %v\n%s", err, out)
	} else {
		t.Logf("sample scrape: %s families", strings.TrimSpace(string(out)))
	}
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
