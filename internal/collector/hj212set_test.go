package collector

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink/hj212"
)

// TestPlatformSettingsOutliveARestart: what a platform set (1062, 1064,
// 1072, 2012) is kept across a restart and wins until the config file's
// own value for that key changes.
func TestPlatformSettingsOutliveARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{Buffer: config.Buffer{Dir: dir}, Uplink: config.Uplink{HJ212: &config.HJ212{RTDInterval: config.Duration(30 * time.Second),
		PW: "123456", OverTime: config.Duration(10 * time.Second), ReCount: 3}}}
	cfg.File = filepath.Join(dir, "c.yaml")
	e, _ := edge.NewEngine(edge.EngineOpts{})
	c := &Collector{cfg: cfg, engine: e}
	st, warn := loadPlatformSettings(cfg)
	if warn != "" || st.RtdInterval != 30*time.Second || st.MinInterval != 1 || st.PW != "123456" {
		t.Fatalf("no file: %+v %q", st, warn)
	}
	set := hj212.Settings{RtdInterval: 60 * time.Second, MinInterval: 10, PW: "654321", OverTime: 10 * time.Second, ReCount: 3, RealTimeOff: true}
	if err := c.savePlatformSettings(set); err != nil {
		t.Fatal(err)
	}
	if e.RTDInterval() != 60*time.Second {
		t.Fatalf("engine rtd interval %s after the platform set 60s", e.RTDInterval())
	}
	if st, _ := loadPlatformSettings(cfg); st != set {
		t.Fatalf("after a restart: %+v, want %+v", st, set)
	}
	// The config's own rtd_interval changes: it wins for that key only.
	cfg.Uplink.HJ212.RTDInterval = config.Duration(120 * time.Second)
	st, _ = loadPlatformSettings(cfg)
	if st.RtdInterval != 120*time.Second || st.PW != "654321" || st.MinInterval != 10 || !st.RealTimeOff {
		t.Fatalf("after the config's rtd_interval changed: %+v", st)
	}
}
