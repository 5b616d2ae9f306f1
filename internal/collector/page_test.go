package collector

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
)

// TestPageAssetsOffline: everything the page loads is embedded and
// relative (no CDN, no absolute URL), and the script polls the JSON
// endpoint rather than opening a stream.
func TestPageAssetsOffline(t *testing.T) {
	n := 0
	err := fs.WalkDir(pageFiles, "page", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := pageFiles.ReadFile(path)
		n++
		for _, bad := range []string{"http://", "https://", "//cdn", "EventSource", "WebSocket", "innerHTML"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q: the page must work offline, poll /status and never parse names as HTML", path, bad)
			}
		}
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("embedded page files: %d (%v)", n, err)
	}
	js, _ := pageFiles.ReadFile("page/app.js")
	if !strings.Contains(string(js), fmt.Sprintf("REFRESH_MS = %d", PageRefresh.Milliseconds())) || !strings.Contains(string(js), `fetch("status"`) {
		t.Error("app.js must poll ./status every PageRefresh")
	}
}

// TestStatusListenerAuth runs a collector whose status listener has a
// bearer token and basic auth, and checks who gets the page, the JSON and
// the metrics; nothing but GET is served (read-only).
func TestStatusListenerAuth(t *testing.T) {
	dir := t.TempDir()
	token := writeFile(t, dir, "status.token", "s3cret-token\n")
	pass := writeFile(t, dir, "status.pass", "correct horse\n")
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	slave := &plantSlave{gas: 100}
	extra := fmt.Sprintf("status: {listen: %q, token_file: %q, user: engineer, password_file: %q}\n", addr, token, pass)
	runCollector(t, plantConfig(t, startSlave(t, slave), "50", extra), Deps{})
	testpeer.WaitPort(t, addr, 10*time.Second)

	type auth func(*http.Request)
	none := func(*http.Request) {}
	basic := func(u, p string) auth { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	bearer := func(tk string) auth { return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tk) } }
	cases := []struct {
		name, method, path string
		auth               auth
		want               int
		body               string
	}{
		{"page without credentials", "GET", "/", none, 401, ""},
		{"status without credentials", "GET", "/status", none, 401, ""},
		{"metrics without credentials", "GET", "/metrics", none, 401, ""},
		{"wrong password", "GET", "/status", basic("engineer", "wrong"), 401, ""},
		{"wrong user", "GET", "/status", basic("admin", "correct horse"), 401, ""},
		{"wrong token", "GET", "/status", bearer("s3cret-toke"), 401, ""},
		{"page with basic auth", "GET", "/", basic("engineer", "correct horse"), 200, `<script src="page/app.js"`},
		{"script with basic auth", "GET", "/page/app.js", basic("engineer", "correct horse"), 200, "REFRESH_MS"},
		{"status with the token", "GET", "/status", bearer("s3cret-token"), 200, `"gateway":"GW-SK"`},
		{"metrics with the token", "GET", "/metrics", bearer("s3cret-token"), 200, "edgecollector_uplink_backlog"},
		{"POST is not served", "POST", "/status", bearer("s3cret-token"), 405, ""},
		{"unknown path", "GET", "/reset", bearer("s3cret-token"), 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
			tc.auth(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.path, resp.StatusCode, tc.want, b)
			}
			if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate: a browser would not ask for the password")
			}
			if !strings.Contains(string(b), tc.body) {
				t.Errorf("body lacks %q:\n%.400s", tc.body, b)
			}
		})
	}
}

// TestStatusOneOffset: every time in the status document carries the
// configured offset (here +08:00, the default), whatever the host's zone,
// and the recent events hold the trip.
func TestStatusOneOffset(t *testing.T) {
	slave := &plantSlave{gas: 600}
	r := runCollector(t, plantConfig(t, startSlave(t, slave), "50", ""), Deps{})
	var st Status
	hasTrip := func() bool {
		for _, e := range st.Events {
			if e.Type == "interlock" && e.State == "tripped" && e.Interlock == "ESD-1" && e.Seq > 0 && e.Durable {
				return true
			}
		}
		return false
	}
	testpeer.Eventually(t, 30*time.Second, "the trip's action written and its event appended (in the recent events)", func() bool {
		st = tripped(t, r.Collector)
		return !st.Interlocks[0].Actions[0].Since.IsZero() && hasTrip() && st.Points[0].Updated != ""
	})
	doc, _ := json.Marshal(st)
	var times []string
	var walk func(k string, v any)
	walk = func(k string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for kk, vv := range x {
				walk(kk, vv)
			}
		case []any:
			for _, vv := range x {
				walk(k, vv)
			}
		case string:
			if _, err := time.Parse(time.RFC3339, x); err == nil {
				times = append(times, k+"="+x)
			}
		}
	}
	var m any
	json.Unmarshal(doc, &m)
	walk("", m)
	if len(times) < 5 {
		t.Fatalf("only %d times in the status: %v", len(times), times)
	}
	for _, tm := range times {
		if !strings.HasSuffix(tm, "+08:00") {
			t.Errorf("%s: not in the configured offset +08:00", tm)
		}
	}
	if st.Points[0].Unit != "%LEL" || st.Points[0].Kind != "gas" || st.Points[0].Device != "gas" || st.InterlockInfo == nil {
		t.Errorf("point catalogue fields missing: %+v", st.Points[0])
	}
}

func TestEventRing(t *testing.T) {
	enc := &jsonfmt.Encoder{Location: time.FixedZone("UTC+08:00", 8*3600)}
	var r eventRing
	if got := r.recent(); got == nil || len(got) != 0 {
		t.Fatalf("empty ring: %v, want an empty list", got)
	}
	ts := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= RecentEvents+7; i++ {
		m := &edge.Message{Seq: uint64(i), Kind: edge.KindEvent, Events: []edge.Event{{Type: edge.EventAlarm, State: "raised", Point: "GT-1", TS: ts,
			Value: edge.Value{Kind: edge.Number, Num: float64(i)}}}}
		var err error
		if i == RecentEvents+7 {
			err = fmt.Errorf("disk full")
		}
		r.add(enc, "GW", m, err)
	}
	r.add(enc, "GW", &edge.Message{Seq: 999, Kind: edge.KindRT}, nil) // no events: nothing kept
	got := r.recent()
	if len(got) != RecentEvents {
		t.Fatalf("%d events kept, want %d", len(got), RecentEvents)
	}
	if got[0].Seq != RecentEvents+7 || got[len(got)-1].Seq != 8 {
		t.Errorf("newest %d oldest %d, want %d and 8", got[0].Seq, got[len(got)-1].Seq, RecentEvents+7)
	}
	if got[0].Durable || !got[1].Durable {
		t.Error("durable must be false exactly for the event whose append failed")
	}
	if got[0].ID != fmt.Sprintf("GW-%d-0", RecentEvents+7) || got[0].TS != "2026-12-01T18:00:00.000+08:00" || got[0].Value != float64(RecentEvents+7) {
		t.Errorf("event fields: %+v", got[0])
	}
}
