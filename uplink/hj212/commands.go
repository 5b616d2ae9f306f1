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
	QnBadST      = 5 // wrong ST
	QnBadFlag    = 6 // wrong Flag
	QnBadQN      = 7 // wrong QN
	QnBadCN      = 8 // wrong CN
	QnBadCRC     = 9 // CRC check failed
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
	enc := s.c.encoder()
	switch {
	case p.MN != s.c.o.MN:
		log.Warn("platform command for another MN rejected", "mn", p.MN)
		return s.answer(p, CNQnRtn, QnBadMN)
	case p.PW != enc.PW:
		log.Warn("platform command with a wrong PW rejected")
		return s.answer(p, CNQnRtn, QnBadPW)
	case p.ST != s.c.o.ST && p.ST != STInteraction:
		log.Warn("platform command with a wrong ST rejected", "st", p.ST)
		return s.answer(p, CNQnRtn, QnBadST)
	case p.Flag>>2 != 0 && p.Flag>>2 != MakeFlag(enc.Version, false, false)>>2:
		log.Warn("platform command with another protocol version in its Flag rejected", "flag", p.Flag)
		return s.answer(p, CNQnRtn, QnBadFlag)
	case p.QN == "" || checkValue("QN", p.QN) != nil:
		log.Warn("platform command without a usable QN rejected")
		return s.answer(p, CNQnRtn, QnBadQN)
	}
	items := cpItems(p.CP)
	if done, err := s.settingCommand(p, items, log); done {
		return err
	}
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
		return s.change(p, log, func(st *Settings) string {
			st.OverTime, st.ReCount = time.Duration(ot)*time.Second, rc
			return fmt.Sprintf("OverTime %ds, ReCount %d", ot, rc)
		})
	case CNGetTime:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return err
		}
		cp := "SystemTime=" + s.c.o.Now().In(s.c.o.Location).Format(TimeLayout)
		if pol := items["PolId"]; pol != "" && checkValue("PolId", pol) == nil && !strings.Contains(pol, ",") {
			cp = "PolId=" + pol + ";" + cp
		}
		up := Packet{QN: p.QN, ST: s.c.o.ST, CN: CNGetTime, PW: s.c.encoder().PW, MN: s.c.o.MN, Flag: MakeFlag(s.c.encoder().Version, false, false), CP: cp}
		if err := s.writePackets(up); err != nil {
			return err
		}
		return s.answer(p, CNExeRtn, ExeOK)
	case CNSetTime:
		if err := s.answer(p, CNQnRtn, QnReady); err != nil {
			return err
		}
		return s.setTime(p, items, log)
	case CNMinute, CNHour, CNDay:
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
	return s.answer(p, CNQnRtn, QnBadCN)
}

// crcError answers a command whose frame failed its CRC with QnRtn=9,
// when its QN and CN can still be read and it is not itself an answer.
func (s *session) crcError(raw []byte) {
	seg := string(raw)
	i := strings.Index(seg, "QN=")
	if i < 0 {
		return
	}
	if j := strings.Index(seg, "CP=&&"); j > i {
		seg = seg[:j] // the header only
	}
	items := cpItems(seg[i:])
	qn, cn := items["QN"], items["CN"]
	switch {
	case qn == "" || cn == "" || checkValue("QN", qn) != nil:
		return
	case cn == CNDataAck || cn == CNQnRtn || cn == CNExeRtn || cn == CNNotice || cn == CNHeartbeat:
		return
	}
	if err := s.answer(Packet{QN: qn, CN: cn}, CNQnRtn, QnBadCRC); err != nil {
		s.c.log.Warn("cannot answer a frame with a bad CRC", "err", err)
	}
}

// answer writes a 9011 (QnRtn) or 9012 (ExeRtn) for request req.
func (s *session) answer(req Packet, cn string, code int) error {
	key := "QnRtn="
	if cn == CNExeRtn {
		key = "ExeRtn="
	}
	p := Packet{QN: req.QN, ST: STInteraction, CN: cn, PW: s.c.encoder().PW, MN: s.c.o.MN, Flag: MakeFlag(s.c.encoder().Version, false, false),
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
	if h.req.CN == CNDay {
		return s.serveDays(ctx, h)
	}
	period := time.Minute
	if h.req.CN == CNHour {
		period = time.Hour
	}
	// Statistics are appended at the end of their period: look up to one
	// period (and a margin) after EndTime. The buffer streams stat messages
	// only (readings are never decoded), each sent as it is read.
	to := h.end.Add(period + 10*time.Minute)
	sent := 0
	var werr error
	err := s.c.o.Store.Between(h.begin, to, edge.KindStat, func(m *edge.Message) bool {
		ps, err := s.c.encoder().History(m, h.req.CN, h.req.QN, h.begin, h.end)
		if err != nil {
			s.c.log.Error("history request: cannot encode a stored message", "qn", h.req.QN, "err", err)
			return ctx.Err() == nil
		}
		if len(ps) > 0 {
			if werr = s.writePackets(ps...); werr != nil {
				return false
			}
			sent += len(ps)
		}
		return ctx.Err() == nil
	})
	if werr != nil {
		return werr
	}
	if err != nil {
		s.c.log.Error("history request: cannot read the buffer", "qn", h.req.QN, "err", err)
		return s.answer(h.req, CNExeRtn, ExeFailed)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	code := ExeOK
	if sent == 0 {
		code = ExeNoData
	}
	s.c.log.Info("history request served", "cn", h.req.CN, "qn", h.req.QN, "begin", h.begin, "end", h.end, "packets", sent)
	return s.answer(h.req, CNExeRtn, code)
}

// serveDays answers a CN=2031 (daily statistics) from the hour statistics
// in the buffer: per point and day (in the configured zone) the average
// weighted by the hours' poll counts, the minimum, the maximum and the
// worst flag. Only days whose start lies in [BeginTime, EndTime] are sent.
func (s *session) serveDays(ctx context.Context, h histRequest) error {
	loc := s.c.o.Location
	dayOf := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	type key struct {
		point string
		day   int64
	}
	type acc struct {
		st       edge.Stat
		sum      float64
		n        uint32
		min, max float64
	}
	days := map[key]*acc{}
	var order []key
	from, to := dayOf(h.begin), dayOf(h.end).Add(24*time.Hour+time.Hour+10*time.Minute)
	err := s.c.o.Store.Between(from, to, edge.KindStat, func(m *edge.Message) bool {
		for _, st := range m.Stats {
			d := dayOf(st.Start)
			if st.Period != edge.Hour || d.Before(h.begin) || d.After(h.end) {
				continue
			}
			k := key{st.Point, d.Unix()}
			a := days[k]
			if a == nil {
				a = &acc{st: edge.Stat{Point: st.Point, Start: d, Unit: st.Unit, Quality: st.Quality}}
				days[k] = a
				order = append(order, k)
			}
			if st.Quality.Worse(a.st.Quality) {
				a.st.Quality = st.Quality
			}
			if st.Count > 0 {
				if a.n == 0 || st.Min < a.min {
					a.min = st.Min
				}
				if a.n == 0 || st.Max > a.max {
					a.max = st.Max
				}
				a.sum += st.Avg * float64(st.Count)
				a.n += st.Count
			}
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
	var out []edge.Stat
	for _, k := range order {
		a := days[k]
		a.st.Count = a.n
		if a.n > 0 {
			a.st.Avg, a.st.Min, a.st.Max = a.sum/float64(a.n), a.min, a.max
		}
		out = append(out, a.st)
	}
	ps, err := s.c.encoder().DayHistory(out, h.req.QN)
	if err != nil {
		s.c.log.Error("history request: cannot encode", "qn", h.req.QN, "err", err)
		return s.answer(h.req, CNExeRtn, ExeFailed)
	}
	if len(ps) > 0 {
		if err := s.writePackets(ps...); err != nil {
			return err
		}
	}
	code := ExeOK
	if len(ps) == 0 {
		code = ExeNoData
	}
	s.c.log.Info("history request served", "cn", h.req.CN, "qn", h.req.QN, "days", len(out), "packets", len(ps))
	return s.answer(h.req, CNExeRtn, code)
}
