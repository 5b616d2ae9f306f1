package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/internal/uplinkschema"
)

// collectorBin is the collector built once for this package's tests.
var collectorBin string

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "buffer-probe" {
		// A collector run in-process (run) probes its buffer in a child of
		// this binary, as the real binary does with itself.
		os.Exit(buffer.ProbeMain(os.Args[2:], os.Stderr))
	}
	dir, err := os.MkdirTemp("", "edgecollector-test-")
	if err != nil {
		panic(err)
	}
	collectorBin = filepath.Join(dir, "edgecollector")
	start := time.Now()
	out, err := exec.Command("go", "build", "-o", collectorBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "built %s in %s\n", collectorBin, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// subscriber collects what a broker delivers, as the platform would.
type subscriber struct {
	t       *testing.T
	c       paho.Client
	mu      sync.Mutex
	msgs    []received
	invalid []string
}

type received struct {
	Topic string
	Body  map[string]any
	Raw   []byte
	At    time.Time
}

// subscribe connects a platform-side client. persistent uses a durable
// session (clean session off, QoS 1) so the check itself cannot lose
// messages across a broker restart.
func subscribe(t *testing.T, url, filter, id string, persistent bool) *subscriber {
	t.Helper()
	s := &subscriber{t: t}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(!persistent).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetOrderMatters(true).SetResumeSubs(true)
	subscribed := make(chan error, 1)
	o.SetOnConnectHandler(func(c paho.Client) {
		tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
			var body map[string]any
			json.Unmarshal(m.Payload(), &body)
			// Every message the collector publishes must validate against
			// the published schema.
			leaf := m.Topic()[strings.LastIndexByte(m.Topic(), '/')+1:]
			verr := uplinkschema.Validate(leaf, m.Payload())
			s.mu.Lock()
			s.msgs = append(s.msgs, received{m.Topic(), body, append([]byte(nil), m.Payload()...), time.Now()})
			if verr != nil {
				s.invalid = append(s.invalid, fmt.Sprintf("%s: %v\n%s", m.Topic(), verr, m.Payload()))
			}
			s.mu.Unlock()
		})
		tok.Wait()
		select {
		case subscribed <- tok.Error():
		default:
		}
	})
	s.c = paho.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	// Return only once the broker has acknowledged the subscription: a test
	// that stops the broker next must not lose it.
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("subscribe %s: %v", filter, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("subscribe %s: no SUBACK in 10 s", filter)
	}
	t.Cleanup(func() {
		s.c.Disconnect(100)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.invalid {
			t.Errorf("a published message does not validate against docs/uplink.schema.json: %s", e)
		}
		t.Logf("%d messages received, all checked against the schema (%d invalid)", len(s.msgs), len(s.invalid))
	})
	return s
}

func (s *subscriber) all() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// waitFor waits until pred holds for the messages received so far.
func (s *subscriber) waitFor(what string, within time.Duration, pred func([]received) bool) []received {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ms := s.all()
		if pred(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not seen within %s (%d messages received)", what, within, len(ms))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func topicIs(leaf string) func(received) bool {
	return func(r received) bool { return strings.HasSuffix(r.Topic, "/"+leaf) }
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "gateway: {enterprise: E1, code: G1}\nbuffer: {dir: /tmp/x}\nuplink: {mqtt: {url: \"tcp://127.0.0.1:1883\"}}\n")
	bad := writeFile(t, dir, "bad.yaml", "gateway: {enterprise: E1, code: G1, colour: red}\nbuffer: {dir: /tmp/x}\n")
	out, err := exec.Command(collectorBin, "validate", "-c", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("good config: %v %s", err, out)
	}
	out, err = exec.Command(collectorBin, "validate", "-c", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("bad config: want exit 2, got %v\n%s", err, out)
	}
	for _, want := range []string{bad + ":1:37: gateway.colour: unknown key; known keys here: code, enterprise, name, utc_offset", bad + ":1:1: uplink: required", "2 problem(s)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
