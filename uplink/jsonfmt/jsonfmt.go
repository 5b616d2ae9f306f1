// Package jsonfmt is the collector's native JSON format (docs/uplink-format.md,
// schema in docs/uplink.schema.json). Encoding is deterministic: the same
// message encodes to the same bytes but for "resend" and "sent_at".
//
// It encodes by appending to a buffer rather than through encoding/json,
// because it runs for every reading on a small gateway; the tests check every
// encoding against encoding/json's parser and the JSON Schema.
package jsonfmt

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hazwatch/edgecollector/edge"
)

// Version is the "v" of every message.
const Version = 1

// TimeLayout is RFC 3339 with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Encoder encodes messages for one gateway. It is not safe for concurrent
// use (it caches the last timestamp it formatted).
type Encoder struct {
	Enterprise string
	Gateway    string
	Location   *time.Location // the configured UTC offset

	lastT time.Time
	lastB []byte
}

func (e *Encoder) head(dst []byte) []byte {
	dst = append(dst, `{"v":1,"enterprise":`...)
	dst = appendString(dst, e.Enterprise)
	dst = append(dst, `,"gateway":`...)
	return appendString(dst, e.Gateway)
}

// Time formats t in the configured offset. The readings of a poll share
// one timestamp, so the last one formatted is reused.
func (e *Encoder) Time(dst []byte, t time.Time) []byte {
	if e.lastB == nil || !t.Equal(e.lastT) {
		e.lastT = t
		e.lastB = append(e.lastB[:0], '"')
		e.lastB = t.In(e.Location).AppendFormat(e.lastB, TimeLayout)
		e.lastB = append(e.lastB, '"')
	}
	return append(dst, e.lastB...)
}

// Message appends the JSON of a buffered message.
func (e *Encoder) Message(dst []byte, m *edge.Message, resend bool, sentAt time.Time) []byte {
	dst = e.head(dst)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, m.Seq, 10)
	dst = append(dst, `,"resend":`...)
	dst = strconv.AppendBool(dst, resend)
	dst = append(dst, `,"sent_at":`...)
	dst = e.Time(dst, sentAt)
	switch m.Kind {
	case edge.KindRT, edge.KindRTD:
		dst = append(dst, `,"readings":[`...)
		for i := range m.Readings {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.reading(dst, &m.Readings[i])
		}
		dst = append(dst, ']')
	case edge.KindEvent:
		dst = append(dst, `,"events":[`...)
		for i := range m.Events {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.event(dst, &m.Events[i], m.Seq, i)
		}
		dst = append(dst, ']')
	case edge.KindStat:
		dst = append(dst, `,"stats":[`...)
		for i := range m.Stats {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.stat(dst, &m.Stats[i])
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func (e *Encoder) reading(dst []byte, r *edge.Reading) []byte {
	dst = append(dst, `{"point":`...)
	dst = appendString(dst, r.Point)
	dst = append(dst, `,"ts":`...)
	dst = e.Time(dst, r.TS)
	dst = append(dst, `,"value":`...)
	if r.Quality.HasValue() {
		dst = appendValue(dst, r.Value)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"unit":`...)
	dst = appendString(dst, r.Unit)
	dst = append(dst, `,"quality":"`...)
	dst = append(dst, r.Quality.String()...)
	dst = append(dst, `","alarm":`...)
	if r.Alarm == edge.NoLevel {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = append(dst, r.Alarm.String()...)
		dst = append(dst, '"')
	}
	if r.Fault != "" {
		dst = append(dst, `,"fault":`...)
		dst = appendString(dst, r.Fault)
	}
	return append(dst, '}')
}

func (e *Encoder) event(dst []byte, ev *edge.Event, seq uint64, n int) []byte {
	id := ev.ID
	if id == "" {
		id = edge.EventID(e.Gateway, seq, n)
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, id)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, ev.Type.String()...)
	dst = append(dst, `","state":`...)
	dst = appendString(dst, ev.State)
	for _, f := range [...]struct{ k, v string }{{"point", ev.Point}, {"interlock", ev.Interlock}, {"subject", ev.Subject}, {"level", ev.Level},
		{"reason", ev.Reason}, {"by", ev.By}} {
		if f.v != "" {
			dst = append(dst, ',', '"')
			dst = append(dst, f.k...)
			dst = append(dst, '"', ':')
			dst = appendString(dst, f.v)
		}
	}
	dst = append(dst, `,"ts":`...)
	dst = e.Time(dst, ev.TS)
	if !ev.Value.IsNull() {
		dst = append(dst, `,"value":`...)
		dst = appendValue(dst, ev.Value)
	}
	if !ev.Threshold.IsNull() {
		dst = append(dst, `,"threshold":`...)
		dst = appendValue(dst, ev.Threshold)
	}
	if ev.Unit != "" {
		dst = append(dst, `,"unit":`...)
		dst = appendString(dst, ev.Unit)
	}
	if len(ev.Actions) > 0 {
		dst = append(dst, `,"actions":[`...)
		for i, a := range ev.Actions {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"device":`...)
			dst = appendString(dst, a.Device)
			dst = append(dst, `,"table":`...)
			dst = appendString(dst, a.Table)
			dst = append(dst, `,"address":`...)
			dst = strconv.AppendUint(dst, uint64(a.Address), 10)
			dst = append(dst, `,"write":`...)
			dst = appendValue(dst, a.Write)
			dst = append(dst, `,"read_back":`...)
			dst = appendValue(dst, a.ReadBack)
			if a.Error != "" {
				dst = append(dst, `,"error":`...)
				dst = appendString(dst, a.Error)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(ev.Ranges) > 0 {
		dst = append(dst, `,"ranges":[`...)
		for i, r := range ev.Ranges {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			dst = strconv.AppendUint(dst, r.First, 10)
			dst = append(dst, ',')
			dst = strconv.AppendUint(dst, r.Last, 10)
			dst = append(dst, ']')
		}
		dst = append(dst, ']')
	}
	if ev.Type == edge.EventSystem && ev.State == edge.StateBufferDropped {
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, ev.Count, 10)
	}
	if ev.Message != "" {
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, ev.Message)
	}
	return append(dst, '}')
}

func (e *Encoder) stat(dst []byte, s *edge.Stat) []byte {
	dst = append(dst, `{"point":`...)
	dst = appendString(dst, s.Point)
	dst = append(dst, `,"period":"`...)
	dst = append(dst, s.Period.String()...)
	dst = append(dst, `","start":`...)
	dst = e.Time(dst, s.Start)
	dst = append(dst, `,"unit":`...)
	dst = appendString(dst, s.Unit)
	for _, f := range [...]struct {
		k string
		v float64
	}{{"avg", s.Avg}, {"min", s.Min}, {"max", s.Max}} {
		dst = append(dst, ',', '"')
		dst = append(dst, f.k...)
		dst = append(dst, '"', ':')
		if s.Count == 0 {
			dst = append(dst, "null"...)
		} else {
			dst = appendFloat(dst, f.v)
		}
	}
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendUint(dst, uint64(s.Count), 10)
	dst = append(dst, `,"quality":"`...)
	dst = append(dst, s.Quality.String()...)
	return append(dst, '"', '}')
}

func appendValue(dst []byte, v edge.Value) []byte {
	switch v.Kind {
	case edge.Number:
		return appendFloat(dst, v.Num)
	case edge.Bool:
		return strconv.AppendBool(dst, v.Bool)
	case edge.String:
		return appendString(dst, v.Str)
	}
	return append(dst, "null"...)
}

// appendFloat formats like encoding/json; NaN and Inf (never valid JSON)
// become null.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if out, ok := appendShortDecimal(dst, f); ok {
		return out
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	dst = strconv.AppendFloat(dst, f, fmt, -1, 64)
	if fmt == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6}

// appendShortDecimal is appendFloat's fast path for the values instruments
// give: integers and decimals of up to 6 places below 1e15. It formats f as
// m/10^k when that decimal reads back as f, which is then the shortest
// decimal that does (any other within f's rounding interval is more than
// one ulp away at 15 digits), so the output is strconv's, at a fraction of
// the cost. It reports false for anything else.
func appendShortDecimal(dst []byte, f float64) ([]byte, bool) {
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, '-', '0'), true
		}
		return append(dst, '0'), true
	}
	abs := math.Abs(f)
	if abs < 1e-6 || abs >= 1e15 {
		return dst, false
	}
	for k, p := range pow10 {
		m := abs * p
		if m >= 1e15 {
			return dst, false
		}
		if m != math.Trunc(m) || m/p != abs {
			continue
		}
		u := uint64(m)
		for k > 0 && u%10 == 0 {
			u /= 10
			k--
		}
		if f < 0 {
			dst = append(dst, '-')
		}
		if k == 0 {
			return strconv.AppendUint(dst, u, 10), true
		}
		var digits [24]byte
		d := strconv.AppendUint(digits[:0], u, 10)
		if len(d) <= k {
			dst = append(dst, '0', '.')
			for i := len(d); i < k; i++ {
				dst = append(dst, '0')
			}
			return append(dst, d...), true
		}
		dst = append(dst, d[:len(d)-k]...)
		dst = append(dst, '.')
		return append(dst, d[len(d)-k:]...), true
	}
	return dst, false
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
