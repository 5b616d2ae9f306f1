package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/internal/collector"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// domPoint is a points-table row as the browser shows it.
type domPoint struct {
	Point, Name, Quality, Value, Text, QualityText string
}

const readRows = `Array.from(document.querySelectorAll('#pt-body tr')).map(tr => ({
  Point: tr.dataset.point, Quality: tr.dataset.quality,
  Name: tr.querySelector('td.name').textContent,
  Value: tr.querySelector('td.value').dataset.value, Text: tr.querySelector('td.value').textContent,
  QualityText: tr.querySelector('td.quality').textContent}))`

// demoStatus is the part of /status the browser test compares.
type demoStatus struct {
	Points []struct {
		Point, Name, Unit, Quality string
		Value                      any
	} `json:"points"`
	Interlocks []struct {
		Name    string `json:"name"`
		Tripped bool   `json:"tripped"`
	} `json:"interlocks"`
}

func getStatus(t *testing.T, addr string) demoStatus {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st demoStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// newBrowser starts Debian's chromium headless with the flags this closed
// network needs (docs: no background connections), at 1366x768.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	testpeer.Need(t, "chromium")
	exe, _ := exec.LookPath("chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 768))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// TestStatusPageInBrowser opens the demo's local page in headless
// chromium while the demo polls its simulated Modbus TCP slaves: every
// point's row shows the live value (checked against /status and, for
// GT-101, against the slave read with mbpoll) and its quality with the
// Chinese label; after the scripted leak the tripped interlock appears
// within one refresh; the page fits a phone's width. With
// EDGE_SCREENSHOT=FILE it saves the 1366x768 screenshot of the trip there
// (docs/status-page.png is made so).
func TestStatusPageInBrowser(t *testing.T) {
	testpeer.Need(t, "chromium", "mbpoll")
	plc := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	gas := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	brk := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	web := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	demo := testpeer.Start(t, collectorBin, "demo", "--plc", plc, "--gas", gas, "--mqtt", brk, "--status", web, "--data", t.TempDir(),
		"--for", "150s", "--quiet")
	demo.WaitOutput(t, "status page: http://"+web+"/", 10*time.Second)
	testpeer.WaitPort(t, web, 10*time.Second)
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+web+"/"), chromedp.WaitVisible(chromedp.CSS(`#pt-body tr[data-point="GT-101"]`))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}

	// Every point: the row's value and quality are the ones /status gives
	// (values are held at least 5 s, so one refresh brings them together).
	var rows []domPoint
	var st demoStatus
	var mismatch string
	testpeer.Eventually(t, 20*time.Second, "the page's rows to match /status", func() bool {
		st = getStatus(t, web)
		var err error
		if rows, err = chromedp.Run(ctx, chromedp.Evaluate[[]domPoint](readRows)); err != nil {
			t.Fatal(err)
		}
		mismatch = comparePoints(st, rows)
		return mismatch == ""
	})
	for _, r := range rows {
		t.Logf("row %s %q: %s [%s]", r.Point, r.Name, r.Text, r.QualityText)
	}
	cfg := demoConfig(t)
	if rows[6].Point != "GT-101" || rows[6].Name != cfg.Points[6].Name || !strings.Contains(rows[6].Name, "可燃气体") {
		t.Errorf("GT-101's Chinese name is shown as %q, want %q", rows[6].Name, cfg.Points[6].Name)
	}
	if !strings.Contains(rows[0].QualityText, "good") || !strings.Contains(rows[0].QualityText, "正常") {
		t.Errorf("quality cell %q: want the name and its Chinese label", rows[0].QualityText)
	}
	// The DOM's GT-101 against the slave itself (the demo holds values 5 s).
	testpeer.Eventually(t, 20*time.Second, "GT-101 on the page to equal the slave's register read by mbpoll", func() bool {
		raw := mbpoll(t, gas, "-a", "1", "-t", "3", "-r", "0", "-c", "1")
		want := (raw - 4000) * 100 / 16000
		time.Sleep(collector.PageRefresh + 500*time.Millisecond) // one refresh of the page after the read
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#pt-body tr[data-point="GT-101"] td.value').dataset.value`))
		if err != nil {
			t.Fatal(err)
		}
		got, err := strconv.ParseFloat(v, 64)

		t.Logf("GT-101: mbpoll raw %v = %.3f %%LEL, page %q", raw, want, v)
		return err == nil && math.Abs(got-want) < 1e-6
	})

	// The leak: once /status says ESD-101 tripped, the page shows it within
	// one refresh (plus a second for a loaded machine).
	testpeer.Eventually(t, 90*time.Second, "ESD-101 tripped in /status", func() bool {
		for _, il := range getStatus(t, web).Interlocks {
			if il.Name == "ESD-101" && il.Tripped {
				return true
			}
		}
		return false
	})
	seen := time.Now()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#il-list [data-interlock="ESD-101"][data-state="tripped"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#banner[data-state="trip"]`))); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(seen); d > collector.PageRefresh+time.Second {
		t.Errorf("the trip reached the page %s after /status had it; the page refreshes every %s", d, collector.PageRefresh)
	} else {
		t.Logf("trip on the page %s after /status", d.Round(time.Millisecond))
	}
	banner, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#banner`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(banner, "ESD-101") || !strings.Contains(banner, "GT-101") {
		t.Errorf("banner %q: want the interlock and the vote that tripped it", banner)
	}
	if f := os.Getenv("EDGE_SCREENSHOT"); f != "" {
		if err := os.WriteFile(f, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", f)
	}

	// A phone: nothing wider than the screen but the points table, which
	// scrolls inside its card.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("at 390 px wide the page scrolls sideways")
	}
	if err := demo.Stop(); err != nil {
		t.Fatalf("demo did not stop cleanly: %v", err)
	}
}

// comparePoints says how the rows differ from the status ("" if not).
func comparePoints(st demoStatus, rows []domPoint) string {
	if len(rows) != len(st.Points) || len(rows) == 0 {
		return fmt.Sprintf("%d rows, %d points", len(rows), len(st.Points))
	}
	for i, p := range st.Points {
		r := rows[i]
		want := ""
		if p.Value != nil {
			want = fmt.Sprint(p.Value)
		}
		if r.Point != p.Point || r.Quality != p.Quality || r.Value != want {
			return fmt.Sprintf("row %s %s=%q, status %s %s=%q", r.Point, r.Quality, r.Value, p.Point, p.Quality, want)
		}
		if p.Quality == "good" && (p.Value == nil || (p.Unit != "" && !strings.HasSuffix(r.Text, " "+p.Unit))) {
			return fmt.Sprintf("row %s shows %q, want a value with unit %q", r.Point, r.Text, p.Unit)
		}
	}
	return ""
}

// demoConfig is the demo's embedded config as the demo fills it in.
func demoConfig(t *testing.T) *config.Config {
	t.Helper()
	r := strings.NewReplacer("${PLC_ADDR}", "127.0.0.1:1", "${GAS_ADDR}", "127.0.0.1:2", "${MQTT_URL}", "tcp://127.0.0.1:3", "${DATA_DIR}", t.TempDir())
	cfg, err := config.Parse("demo.yaml", []byte(r.Replace(string(config.Demo))))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
