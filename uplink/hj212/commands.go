package hj212

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// Answer codes of 9011 (QnRtn) and 9012 (ExeRtn), HJ 212-2017 tables 4-5.
const (
	QnReady      = 1 // ready to execute the request
	QnRejected   = 2 // request rejected
	QnBadPW      = 3 // wrong PW
	QnBadMN      = 4 // wrong MN
	ExeOK        = 1 // executed
	ExeFailed    = 2 // failed, reason unknown
	ExeCondition = 3 // the request's conditions are wrong
	ExeBusy      = 5 // system busy, cannot execute
	ExeNoData    = 100
)

// histRequest is a platform's request for minute or hour statistics.
type histRequest struct {
	req        Packet
	begin, end time.Time
}

// handle answers one packet from the platform.
func (s *session) handle(p Packet, hist chan<- histRequest) error {
	switch p.CN {
	case CNDataAck:
		s.dataAck(p)
		return nil
	case CNQnRtn, CNExeRtn, CNNotice, CNHeartbeat:
		s.c.log.Debug("answer from the platform", "cn", p.CN, "qn", p.QN, "cp", p.CP)
		return nil
	}
	s.c.update(func(st *Stats) { st.Commands++ })
	log := s.c.log.With("cn", p.CN, "qn", p.QN)
	switch {
	case p.MN != s.c.o.MN:
		log.Warn("platform command for another MN rejected", "mn", p.MN)
		return s.answer(p, CNQnRtn, QnBadMN)
	case p.PW != s.c.o.PW:
		log.Warn("platform command with a wrong PW rejected")
		return s.answer(p, CNQnRtn, QnBadPW)
	}
	items := cpItems(p.CP)
	switch p.CN {
	case CNSetOverTime:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return err
		}
		ot, err1 := strconv.Atoi(items["OverTime"])
		rc, err2 := strconv.Atoi(items["ReCount"])
		if err1 != nil || err2 != nil || ot < 1 || ot > 3600 || rc < 0 || rc > 99 {
			log.Warn("CN=1000 with OverTime/ReCount out of range ignored", "cp", p.CP)
			return s.answer(p, CNExeRtn, ExeCondition)
		}
		s.c.setLimits(time.Duration(ot)*time.Second, rc)
		log.Info("platform set OverTime and ReCount", "overtime", time.Duration(ot)*time.Second, "recount", rc)
		return s.answer(p, CNExeRtn, ExeOK)
	case CNGetTime:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return err
		}
		cp := "SystemTime=" + s.c.o.Now().In(s.c.o.Location).Format(TimeLayout)
		if pol := items["PolId"]; pol != "" && checkValue("PolId", pol) == nil && !strings.Contains(pol, ",") {
			cp = "PolId=" + pol + ";" + cp
		}
		up := Packet{QN: p.QN, ST: s.c.o.ST, CN: CNGetTime, PW: s.c.o.PW, MN: s.c.o.MN, Flag: MakeFlag(s.c.enc.Version, false, false), CP: cp}
		if err := s.writePackets(up); err != nil {
			return err
		}
		return s.answer(p, CNExeRtn, ExeOK)
	case CNSetTime:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return err
		}
		// The gateway's clock is set by its own time service; the
		// timestamps of readings, alarms and interlock actions must never
		// jump because of the platform. We answer that the request's
		// conditions do not allow it.
		args := []any{"requested", items["SystemTime"]}
		if t, err := time.ParseInLocation(TimeLayout, items["SystemTime"], s.c.o.Location); err == nil {
			args = append(args, "offset", t.Sub(s.c.o.Now()).Round(time.Second))
		}
		log.Warn("platform asked to set the clock (CN=1012); not obeyed: the gateway's clock is kept by its own time service", args...)
		return s.answer(p, CNExeRtn, ExeCondition)
	case CNMinute, CNHour:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return err
		}
		begin, err1 := time.ParseInLocation(TimeLayout, items["BeginTime"], s.c.o.Location)
		end, err2 := time.ParseInLocation(TimeLayout, items["EndTime"], s.c.o.Location)
		if err1 != nil || err2 != nil || end.Before(begin) {
			log.Warn("history request without a valid BeginTime/EndTime", "cp", p.CP)
			return s.answer(p, CNExeRtn, ExeCondition)
		}
		select {
		case hist <- histRequest{p, begin, end}:
			return nil
		default:
			log.Warn("history request while others are being served; answered busy")
			return s.answer(p, CNExeRtn, ExeBusy)
		}
	}
	log.Info("platform command not supported; rejected", "cp", p.CP)
	return s.answer(p, CNQnRtn, QnRejected)
}

// answer writes a 9011 (QnRtn) or 9012 (ExeRtn) for request req.
func (s *session) answer(req Packet, cn string, code int) error {
	key := "QnRtn="
	if cn == CNExeRtn {
		key = "ExeRtn="
	}
	p := Packet{QN: req.QN, ST: STInteraction, CN: cn, PW: s.c.o.PW, MN: s.c.o.MN, Flag: MakeFlag(s.c.enc.Version, false, false),
		CP: key + strconv.Itoa(code)}
	if checkValue("QN", req.QN) != nil {
		p.QN = "" // never echo what would break our own frame
	}
	return s.writePackets(p)
}

// cpItems reads the key=value items of a CP content (separated by ; or ,).
func cpItems(cp string) map[string]string {
	out := map[string]string{}
	for _, group := range strings.Split(cp, ";") {
		for _, it := range strings.Split(group, ",") {
			if k, v, ok := strings.Cut(it, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

// historyWorker serves history requests one at a time beside the loop.
func (s *session) historyWorker(ctx context.Context, hist <-chan histRequest, fail chan<- error) {
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-hist:
			if err := s.serveHistory(ctx, h); err != nil {
				if ctx.Err() == nil {
					select {
					case fail <- fmt.Errorf("history request QN %s: %w", h.req.QN, err):
					default:
					}
				}
				return
			}
		}
	}
}

// serveHistory sends the statistics a 2051 or 2061 request asks for, then
// the 9012. Statistics are appended at the end of their period, so the
// messages are looked up by creation time up to one period (and a margin)
// after EndTime, and picked by their start.
func (s *session) serveHistory(ctx context.Context, h histRequest) error {
	period, chunk := time.Minute, time.Hour
	if h.req.CN == CNHour {
		period, chunk = time.Hour, 24*time.Hour
	}
	to := h.end.Add(period + 10*time.Minute)
	sent := 0
	for lo := h.begin; lo.Before(to); lo = lo.Add(chunk) {
		hi := lo.Add(chunk)
		if hi.After(to) {
			hi = to
		}
		var ms []*edge.Message
		err := s.c.o.Store.Between(lo, hi, func(m *edge.Message) bool {
			if m.Kind == edge.KindStat {
				ms = append(ms, m)
			}
			return ctx.Err() == nil
		})
		if err != nil {
			s.c.log.Error("history request: cannot read the buffer", "qn", h.req.QN, "err", err)
			return s.answer(h.req, CNExeRtn, ExeFailed)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, m := range ms {
			ps, err := s.c.enc.History(m, h.req.CN, h.req.QN, h.begin, h.end)
			if err != nil {
				s.c.log.Error("history request: cannot encode a stored message", "qn", h.req.QN, "err", err)
				continue
			}
			if len(ps) == 0 {
				continue
			}
			if err := s.writePackets(ps...); err != nil {
				return err
			}
			sent += len(ps)
		}
	}
	code := ExeOK
	if sent == 0 {
		code = ExeNoData
	}
	s.c.log.Info("history request served", "cn", h.req.CN, "qn", h.req.QN, "begin", h.begin, "end", h.end, "packets", sent)
	return s.answer(h.req, CNExeRtn, code)
}
