package hj212

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// The platform's commands that read and set the gateway's settings
// (HJ 212-2017 6.6, table 7): every one is answered 9011 QnRtn, then (for
// a read) the value in a packet of the request's CN, then 9012 ExeRtn.
// Accepted values are bounded, reported to OnSettings (which persists them
// across restarts) and audited.

// Bounds of what a platform may set (our reading of HJ 212-2017; see
// docs/hj212.md).
const (
	MinRtdInterval = 30 * time.Second
	MaxRtdInterval = time.Hour
	MaxMinInterval = 60 // minutes; the interval must divide an hour
)

// Settings returns what is in effect.
func (c *Client) Settings() Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set
}

// settingCommand handles 1061-1064, 1072, 2011 and 2012; done is false for
// other commands.
func (s *session) settingCommand(p Packet, items map[string]string, log *slog.Logger) (done bool, err error) {
	switch p.CN {
	case CNGetRtdInt, CNGetMinInt:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return true, err
		}
		st := s.c.Settings()
		cp := "RtdInterval=" + strconv.Itoa(int(st.RtdInterval/time.Second))
		if p.CN == CNGetMinInt {
			cp = "MinInterval=" + strconv.Itoa(st.MinInterval)
		}
		enc := s.c.encoder()
		up := Packet{QN: p.QN, ST: s.c.o.ST, CN: p.CN, PW: enc.PW, MN: s.c.o.MN, Flag: MakeFlag(enc.Version, false, false), CP: cp}
		if err := s.writePackets(up); err != nil {
			return true, err
		}
		return true, s.answer(p, CNExeRtn, ExeOK)
	case CNSetRtdInt:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return true, err
		}
		n, err := strconv.Atoi(items["RtdInterval"])
		if d := time.Duration(n) * time.Second; err != nil || d < MinRtdInterval || d > MaxRtdInterval {
			log.Warn("CN=1062 with RtdInterval out of range refused", "cp", p.CP, "min", MinRtdInterval, "max", MaxRtdInterval)
			return true, s.answer(p, CNExeRtn, ExeCondition)
		}
		return true, s.change(p, log, func(st *Settings) string {
			st.RtdInterval = time.Duration(n) * time.Second
			return fmt.Sprintf("RtdInterval %ds", n)
		})
	case CNSetMinInt:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return true, err
		}
		n, err := strconv.Atoi(items["MinInterval"])
		if err != nil || n < 1 || n > MaxMinInterval || 60%n != 0 {
			log.Warn("CN=1064 with MinInterval out of range refused (1-60 minutes dividing an hour)", "cp", p.CP)
			return true, s.answer(p, CNExeRtn, ExeCondition)
		}
		return true, s.change(p, log, func(st *Settings) string {
			st.MinInterval = n
			return fmt.Sprintf("MinInterval %d min", n)
		})
	case CNSetPW:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return true, err
		}
		pw := items["NewPW"]
		if pw == "" || len(pw) > 9 || checkValue("PW", pw) != nil {
			log.Warn("CN=1072 without a usable NewPW refused (1-9 characters)")
			return true, s.answer(p, CNExeRtn, ExeCondition)
		}
		return true, s.change(p, log, func(st *Settings) string {
			st.PW = pw
			return "PW changed" // never the password itself
		})
	case CNRealTime, CNRealTimeOff:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return true, err
		}
		off := p.CN == CNRealTimeOff
		return true, s.change(p, log, func(st *Settings) string {
			st.RealTimeOff = off
			if off {
				return "real-time uploads stopped"
			}
			return "real-time uploads started"
		})
	}
	return false, nil
}

// change applies a setting after its 9011: OnSettings persists it (an
// error answers ExeRtn=2 and nothing changes), the client takes it, then
// 9012 ExeRtn=1 (under the old password, for a 1072).
func (s *session) change(p Packet, log *slog.Logger, f func(*Settings) string) error {
	c := s.c
	next := c.Settings()
	what := f(&next)
	if c.o.OnSettings != nil {
		if err := c.o.OnSettings(next); err != nil {
			log.Error("platform setting not applied", "cn", p.CN, "what", what, "err", err)
			return s.answer(p, CNExeRtn, ExeFailed)
		}
	}
	c.mu.Lock()
	prev := c.set
	c.set = next
	if next.RealTimeOff != prev.RealTimeOff {
		enc := *c.enc
		enc.NoRealTime = next.RealTimeOff
		c.enc = &enc
	}
	c.mu.Unlock()
	if next.OverTime != prev.OverTime || next.ReCount != prev.ReCount {
		c.setLimits(next.OverTime, next.ReCount)
	}
	// In effect before the 9012 says so; a new password only after it (the
	// answer goes out under the password the platform used).
	if err := s.answer(p, CNExeRtn, ExeOK); err != nil {
		return err
	}
	if next.PW != prev.PW {
		c.mu.Lock()
		enc := *c.enc
		enc.PW = next.PW
		c.enc = &enc
		c.mu.Unlock()
	}
	log.Info("platform setting applied", "what", what)
	if c.o.Audit != nil {
		c.o.Audit(p.CN, what)
	}
	return nil
}

// setTime answers a CN=1012 by the clock policy: the gateway's clock steps
// (through SetClock; the engine then reports system clock_step) only when
// the policy allows it.
func (s *session) setTime(p Packet, items map[string]string, log *slog.Logger) error {
	c := s.c
	t, err := time.ParseInLocation(TimeLayout, items["SystemTime"], c.o.Location)
	if err != nil {
		log.Warn("CN=1012 without a valid SystemTime", "cp", p.CP)
		return s.answer(p, CNExeRtn, ExeCondition)
	}
	offset := t.Sub(c.o.Now()).Round(time.Second)
	allowed := false
	switch c.o.ClockPolicy {
	case "always":
		allowed = true
	case "when_unsynced":
		allowed = c.o.ClockSynced != nil && !c.o.ClockSynced()
	}
	if !allowed || c.o.SetClock == nil {
		log.Warn("platform asked to set the clock (CN=1012); not obeyed by the clock policy", "requested", items["SystemTime"], "offset", offset,
			"policy", c.o.ClockPolicy)
		return s.answer(p, CNExeRtn, ExeCondition)
	}
	if err := c.o.SetClock(t); err != nil {
		log.Error("platform clock set failed", "requested", items["SystemTime"], "err", err)
		return s.answer(p, CNExeRtn, ExeFailed)
	}
	log.Warn("clock set by the platform (CN=1012)", "to", t, "offset", offset)
	if c.o.Audit != nil {
		c.o.Audit(p.CN, fmt.Sprintf("clock set to %s (offset %s)", t.Format(time.RFC3339), offset))
	}
	return s.answer(p, CNExeRtn, ExeOK)
}
