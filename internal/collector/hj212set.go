package collector

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge/audit"
	"github.com/hazwatch/edgecollector/uplink/hj212"
)

// What an HJ 212 platform set (CN 1000, 1062, 1064, 1072, 2011/2012)
// outlives a restart: <buffer.dir>/hj212-settings.json keeps each value
// with the config's own value for that key when it was set. A platform's
// value wins until the config file's own value for that key changes.

type platformValue[T comparable] struct {
	Value  T `json:"value"`
	Config T `json:"config"` // the config's value when the platform set it
}

type platformFile struct {
	RtdInterval *platformValue[time.Duration] `json:"rtd_interval,omitempty"`
	MinInterval *platformValue[int]           `json:"min_interval,omitempty"`
	PW          *platformValue[string]        `json:"pw,omitempty"`
	OverTime    *platformValue[time.Duration] `json:"overtime,omitempty"`
	ReCount     *platformValue[int]           `json:"recount,omitempty"`
	RealTimeOff bool                          `json:"realtime_off,omitempty"`
}

func settingsPath(cfg *config.Config) string {
	return filepath.Join(cfg.Resolve(cfg.Buffer.Dir), "hj212-settings.json")
}

// configSettings are the config's own values.
func configSettings(h *config.HJ212) hj212.Settings {
	return hj212.Settings{RtdInterval: h.RTDInterval.D(), MinInterval: 1, PW: h.PW, OverTime: h.OverTime.D(), ReCount: h.ReCount}
}

// loadPlatformSettings gives the settings in effect at start: the config's,
// overridden by what a platform set while the config's own value stayed.
func loadPlatformSettings(cfg *config.Config) (hj212.Settings, string) {
	st := configSettings(cfg.Uplink.HJ212)
	b, err := os.ReadFile(settingsPath(cfg))
	if errors.Is(err, os.ErrNotExist) {
		return st, ""
	}
	var f platformFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		return st, fmt.Sprintf("platform settings %s unreadable (%v): the config's values apply", settingsPath(cfg), err)
	}
	if v := f.RtdInterval; v != nil && v.Config == st.RtdInterval && v.Value >= hj212.MinRtdInterval && v.Value <= hj212.MaxRtdInterval {
		st.RtdInterval = v.Value
	}
	if v := f.MinInterval; v != nil && v.Config == st.MinInterval && v.Value >= 1 && 60%v.Value == 0 {
		st.MinInterval = v.Value
	}
	if v := f.PW; v != nil && v.Config == st.PW && v.Value != "" {
		st.PW = v.Value
	}
	if v := f.OverTime; v != nil && v.Config == st.OverTime && v.Value > 0 {
		st.OverTime = v.Value
	}
	if v := f.ReCount; v != nil && v.Config == st.ReCount && v.Value > 0 {
		st.ReCount = v.Value
	}
	st.RealTimeOff = f.RealTimeOff
	return st, ""
}

// savePlatformSettings persists a platform's change and applies what is the
// engine's (the real-time and minute intervals).
func (c *Collector) savePlatformSettings(st hj212.Settings) error {
	cfg := c.Config()
	own := configSettings(cfg.Uplink.HJ212)
	f := platformFile{RealTimeOff: st.RealTimeOff}
	if st.RtdInterval != own.RtdInterval {
		f.RtdInterval = &platformValue[time.Duration]{st.RtdInterval, own.RtdInterval}
	}
	if st.MinInterval != own.MinInterval {
		f.MinInterval = &platformValue[int]{st.MinInterval, own.MinInterval}
	}
	if st.PW != own.PW {
		f.PW = &platformValue[string]{st.PW, own.PW}
	}
	if st.OverTime != own.OverTime {
		f.OverTime = &platformValue[time.Duration]{st.OverTime, own.OverTime}
	}
	if st.ReCount != own.ReCount {
		f.ReCount = &platformValue[int]{st.ReCount, own.ReCount}
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	path := settingsPath(cfg)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if fh, err := os.Open(tmp); err == nil {
		fh.Sync()
		fh.Close()
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	c.engine.SetRTDInterval(st.RtdInterval)
	c.engine.SetMinuteInterval(st.MinInterval)
	return nil
}

// platformAudit records a platform command that changed something.
func (c *Collector) platformAudit(cn, what string) {
	if c.audit == nil {
		return
	}
	if _, err := c.audit.Write(audit.Rec{Source: "platform (HJ 212)", Category: "hj212", Type: "CN " + cn, Result: "ok", Detail: what}); err != nil {
		c.log.Error("audit log write failed", "err", err)
	}
}

// setClock steps the clock for an accepted CN 1012: through the configured
// command, or the system call (CAP_SYS_TIME).
func setClock(h *config.HJ212) func(time.Time) error {
	if len(h.ClockCommand) > 0 {
		return func(t time.Time) error {
			args := append(append([]string(nil), h.ClockCommand[1:]...), t.Format(time.RFC3339))
			out, err := exec.Command(h.ClockCommand[0], args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("clock command %s: %w: %s", h.ClockCommand[0], err, out)
			}
			return nil
		}
	}
	return setSystemClock
}
