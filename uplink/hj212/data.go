package hj212

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// Commands (CN) we send or answer.
const (
	CNSetOverTime = "1000" // platform: set OverTime and ReCount
	CNGetTime     = "1011" // platform: get the field time; we: upload it
	CNSetTime     = "1012" // platform: set the field time (policy: accept_platform_time)
	CNGetRtdInt   = "1061" // platform: read the real-time data interval
	CNSetRtdInt   = "1062" // platform: set it
	CNGetMinInt   = "1063" // platform: read the minute-statistics interval
	CNSetMinInt   = "1064" // platform: set it
	CNSetPW       = "1072" // platform: set the access password
	CNRealTimeOff = "2012" // platform: stop real-time uploads (2011 starts them)
	CNDay         = "2031" // daily statistics (history request)
	CNRealTime    = "2011" // real-time data
	CNMinute      = "2051" // minute statistics (upload and history request)
	CNHour        = "2061" // hour statistics (upload and history request)
	CNQnRtn       = "9011" // request answer
	CNExeRtn      = "9012" // execution result
	CNNotice      = "9013" // notice answer
	CNDataAck     = "9014" // data answer
	CNHeartbeat   = "9015" // heartbeat (2025)
)

// STInteraction is the system code of the answers 9011 and 9012.
const STInteraction = "91"

// TimeLayout is the layout of DataTime, SystemTime, BeginTime and EndTime
// (yyyyMMddHHmmss); a QN adds three digits of milliseconds.
const TimeLayout = "20060102150405"

// QNAt is the QN of a packet not tied to a seq (heartbeats): t to the
// millisecond, yyyyMMddHHmmssSSS.
func QNAt(t time.Time) string {
	b := t.AppendFormat(make([]byte, 0, 17), TimeLayout)
	ms := t.Nanosecond() / 1e6
	return string(append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10)))
}

// DataFlag is the HJ 212 data flag of a quality: good N, comm_fault and
// stale B, exception and sensor_fault D, over_range and under_range T,
// maintenance M.
func DataFlag(q edge.Quality) byte {
	switch q {
	case edge.Good:
		return 'N'
	case edge.CommFault, edge.Stale:
		// One cause, one flag: a dead slave's probes (comm_fault) and the
		// polls in between (stale) are both the device lost.
		return 'B'
	case edge.OverRange, edge.UnderRange:
		return 'T'
	case edge.Maintenance:
		return 'M'
	}
	return 'D' // exception, sensor_fault, stale, and anything unknown
}

// Encoder turns buffered messages into packets, deterministically: the same
// message always gives the same packets, but for RF=1 on a resend (2025).
type Encoder struct {
	Version    Version
	ST, PW, MN string
	// Ack asks the platform for a 9014 answer to each data packet (Flag
	// bit 0).
	Ack bool
	// Factors maps point codes to HJ 212 factor codes (e.g. a21026);
	// readings and statistics of points without one are left out.
	Factors map[string]string
	// Location is the time zone of QN and DataTime: the configured UTC
	// offset (nil: UTC).
	Location *time.Location
	// NoRealTime: the platform stopped real-time uploads (CN 2012): rtd
	// messages give no packets until a CN 2011 starts them again.
	NoRealTime bool
}

func (e *Encoder) loc() *time.Location {
	if e.Location == nil {
		return time.UTC
	}
	return e.Location
}

// Check reports every setting that would make a bad frame.
func (e *Encoder) Check() error {
	var errs []error
	if e.Version != V2017 && e.Version != V2025 {
		errs = append(errs, fmt.Errorf("hj212: version %s is not supported; want 2017 or 2025", e.Version))
	}
	if e.MN == "" {
		errs = append(errs, errors.New("hj212: MN is required: the device id the platform assigned"))
	}
	for _, f := range [...]struct{ k, v string }{{"ST", e.ST}, {"PW", e.PW}, {"MN", e.MN}} {
		if err := checkValue(f.k, f.v); err != nil {
			errs = append(errs, fmt.Errorf("hj212: %w", err))
		}
	}
	points := make([]string, 0, len(e.Factors))
	for p := range e.Factors {
		points = append(points, p)
	}
	sort.Strings(points)
	for _, p := range points {
		if f := e.Factors[p]; !factorRE(f) {
			errs = append(errs, fmt.Errorf("hj212: point %s: factor code %q: want letters, digits and _ only (e.g. a21026)", p, f))
		}
	}
	return errors.Join(errs...)
}

func factorRE(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// QN is the request code of message m: its creation time in the configured
// zone to the second (yyyyMMddHHmmss), then the seq modulo 1000 in three
// digits where the standard has milliseconds. Every packet of the seq, sent
// or resent on any connection, carries it. Two seqs share a QN only when
// more than 1,000 messages are created within one second (or the clock
// steps back onto an earlier second and seqs meet again modulo 1000).
func (e *Encoder) QN(m *edge.Message) string {
	b := make([]byte, 0, 17)
	b = m.Created.In(e.loc()).AppendFormat(b, TimeLayout)
	s := m.Seq % 1000
	return string(append(b, byte('0'+s/100), byte('0'+s/10%10), byte('0'+s%10)))
}

// unit is one command's CP content of a message.
type unit struct{ cn, cp string }

// Packets returns the packets of message m under its QN, split so that no
// data segment passes MaxSegment. It returns none for event messages and
// for messages none of whose points has a factor code. resend sets RF=1
// (2025 only: 2017 has no marker, a resend is the same bytes).
func (e *Encoder) Packets(m *edge.Message, resend bool) ([]Packet, error) {
	var us []unit
	switch m.Kind {
	case edge.KindRTD:
		// One 2011 per rtd_interval per MN, every factor in it; the rt
		// messages (a poll group's tick) are not sent over HJ 212.
		if cp, ok := e.RealTimeCP(m); ok && !e.NoRealTime {
			us = append(us, unit{CNRealTime, cp})
		}
	case edge.KindStat:
		us = e.statUnits(m, func(*edge.Stat) bool { return true })
	}
	ps, err := e.build(us, e.QN(m), e.Ack, resend)
	if err != nil {
		return nil, fmt.Errorf("seq %d: %w", m.Seq, err)
	}
	return ps, nil
}

// History returns the packets that answer the platform's request qn for
// cn (2051 minute or 2061 hour statistics) from stat message m: the
// statistics of that period starting within [begin, end]. They carry the
// request's QN and ask for no answer.
func (e *Encoder) History(m *edge.Message, cn, qn string, begin, end time.Time) ([]Packet, error) {
	var period edge.Period
	switch cn {
	case CNMinute:
		period = edge.Minute
	case CNHour:
		period = edge.Hour
	default:
		return nil, fmt.Errorf("hj212: CN %s is not a statistics command", cn)
	}
	if m.Kind != edge.KindStat {
		return nil, nil
	}
	us := e.statUnits(m, func(s *edge.Stat) bool {
		return s.Period == period && !s.Start.Before(begin) && !s.Start.After(end)
	})
	ps, err := e.build(us, qn, false, false)
	if err != nil {
		return nil, fmt.Errorf("seq %d: %w", m.Seq, err)
	}
	return ps, nil
}

// DayHistory returns the packets that answer a CN=2031 request qn with
// daily statistics (one Stat per point and day: Start is the day's start,
// the period field is not read).
func (e *Encoder) DayHistory(days []edge.Stat, qn string) ([]Packet, error) {
	m := &edge.Message{Kind: edge.KindStat, Stats: make([]edge.Stat, len(days))}
	for i, d := range days {
		d.Period = edge.Hour // grouped by start, like any period
		m.Stats[i] = d
	}
	us := e.statUnits(m, func(*edge.Stat) bool { return true })
	for i := range us {
		us[i].cn = CNDay
	}
	return e.build(us, qn, false, false)
}

// splitHeader is the room PNUM and PNO take in the header at most.
const splitHeader = len(";PNUM=9999;PNO=9999")

// build makes the packets of a message's units. One unit is split on its
// own; several (a stat message with more than one period or start) become
// the parts of one split series under the one QN.
func (e *Encoder) build(us []unit, qn string, ack, resend bool) ([]Packet, error) {
	max := MaxSegment
	if len(us) > 1 {
		max -= splitHeader
	}
	var out []Packet
	for _, u := range us {
		p := Packet{QN: qn, ST: e.ST, CN: u.cn, PW: e.PW, MN: e.MN, Flag: MakeFlag(e.Version, ack, false), CP: u.cp,
			RF: resend && e.Version >= V2025}
		ps, err := Split(p, max)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	if len(us) > 1 {
		for i := range out {
			out[i].Flag |= FlagSplit
			out[i].PNUM, out[i].PNO = len(out), i+1
		}
	}
	return out, nil
}

// RealTimeCP is the CN 2011 content of an rtd (or rt) message:
// DataTime=yyyyMMddHHmmss;<factor>-Rtd=<value>,<factor>-Flag=<flag>;...
// in reading order. DataTime is an rtd message's interval boundary (its
// creation time); for an rt message the earliest time of the readings sent
// (the message's creation time when they have none). A reading without a
// value (null: comm_fault, exception, sensor_fault, stale; or not a
// number) has no -Rtd item, only its -Flag. ok is false when no reading's
// point has a factor code.
func (e *Encoder) RealTimeCP(m *edge.Message) (cp string, ok bool) {
	var ts time.Time
	n := 0
	for i := range m.Readings {
		r := &m.Readings[i]
		if _, ok := e.Factors[r.Point]; !ok {
			continue
		}
		n++
		if !r.TS.IsZero() && (ts.IsZero() || r.TS.Before(ts)) {
			ts = r.TS
		}
	}
	if n == 0 {
		return "", false
	}
	if ts.IsZero() || m.Kind == edge.KindRTD {
		ts = m.Created
	}
	b := make([]byte, 0, 24+n*40)
	b = append(b, "DataTime="...)
	b = ts.In(e.loc()).AppendFormat(b, TimeLayout)
	for i := range m.Readings {
		r := &m.Readings[i]
		f, ok := e.Factors[r.Point]
		if !ok {
			continue
		}
		b = append(b, ';')
		if v, ok := rtd(r); ok {
			b = append(b, f...)
			b = append(b, "-Rtd="...)
			b = append(b, v...)
			b = append(b, ',')
		}
		b = append(b, f...)
		b = append(b, "-Flag="...)
		b = append(b, DataFlag(r.Quality))
	}
	return string(b), true
}

// rtd is a reading's value as HJ 212 writes it; bools are 1 and 0; strings
// and null have none.
func rtd(r *edge.Reading) (string, bool) {
	if !r.Quality.HasValue() {
		return "", false
	}
	switch r.Value.Kind {
	case edge.Number:
		return number(r.Value.Num)
	case edge.Bool:
		if r.Value.Bool {
			return "1", true
		}
		return "0", true
	}
	return "", false
}

// number writes f without an exponent, in the fewest digits that read back
// as f.
func number(f float64) (string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}

type statKey struct {
	period edge.Period
	start  time.Time
}

// statUnits groups a stat message's statistics by period and start (minute
// before hour, earlier before later); each group is one 2051 or 2061
// content: DataTime=<start>;<factor>-Avg=..,<factor>-Min=..,<factor>-Max=..,<factor>-Flag=..
// A statistic with no value in its period (Count 0) has only its -Flag.
func (e *Encoder) statUnits(m *edge.Message, keep func(*edge.Stat) bool) []unit {
	groups := map[statKey][]*edge.Stat{}
	var keys []statKey
	for i := range m.Stats {
		s := &m.Stats[i]
		if _, ok := e.Factors[s.Point]; !ok || (s.Period != edge.Minute && s.Period != edge.Hour) || !keep(s) {
			continue
		}
		k := statKey{s.Period, s.Start.UTC()}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], s)
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if keys[i].period != keys[j].period {
			return keys[i].period < keys[j].period
		}
		return keys[i].start.Before(keys[j].start)
	})
	var us []unit
	for _, k := range keys {
		b := make([]byte, 0, 24+len(groups[k])*80)
		b = append(b, "DataTime="...)
		b = k.start.In(e.loc()).AppendFormat(b, TimeLayout)
		for _, s := range groups[k] {
			f := e.Factors[s.Point]
			b = append(b, ';')
			avg, ok1 := number(s.Avg)
			lo, ok2 := number(s.Min)
			hi, ok3 := number(s.Max)
			if s.Count > 0 && ok1 && ok2 && ok3 {
				for _, kv := range [...]struct{ k, v string }{{"-Avg=", avg}, {"-Min=", lo}, {"-Max=", hi}} {
					b = append(b, f...)
					b = append(b, kv.k...)
					b = append(b, kv.v...)
					b = append(b, ',')
				}
			}
			b = append(b, f...)
			b = append(b, "-Flag="...)
			b = append(b, DataFlag(s.Quality))
		}
		cn := CNMinute
		if k.period == edge.Hour {
			cn = CNHour
		}
		us = append(us, unit{cn, string(b)})
	}
	return us
}
