package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// The record codec is the on-disk form of a message: compact, versioned, and
// independent of any uplink format. Times are kept to the millisecond, which
// is what every uplink format carries.

// Versions, each of which still decodes:
//
//	v1: 0x01 kind body
//	v2: 0x02 kind body extension (the readings' fault texts and the
//	    maintenance events' reason and by)
//	v3: 0x03 crc32c kind body extension, the CRC32C (Castagnoli, 4 bytes
//	    big-endian) over the seq (8 bytes big-endian) and what follows it, so
//	    a damaged value, or a value under another seq's key, is found on
//	    every read (issue 15)
const recordVersion = 3

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func recordCRC(seq uint64, body []byte) uint32 {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return crc32.Update(crc32.Checksum(k[:], castagnoli), castagnoli, body)
}

// value tags
const (
	tagNull byte = iota
	tagNum
	tagFalse
	tagTrue
	tagStr
)

// ErrCorrupt marks a record that cannot be decoded.
var ErrCorrupt = errors.New("corrupt record")

// EncodeRecord appends the record form of m (without its seq, which is the
// key, but with a checksum over both) to dst.
func EncodeRecord(dst []byte, m *edge.Message) []byte {
	start := len(dst)
	dst = append(dst, recordVersion, 0, 0, 0, 0)
	dst = encodeBody(dst, m)
	binary.BigEndian.PutUint32(dst[start+1:], recordCRC(m.Seq, dst[start+5:]))
	return dst
}

// encodeBody appends kind, body and extension (version 2 without its
// version byte).
func encodeBody(dst []byte, m *edge.Message) []byte {
	dst = append(dst, byte(m.Kind))
	dst = binary.AppendVarint(dst, m.Created.UnixMilli())
	base := m.Created.UnixMilli()
	dst = binary.AppendUvarint(dst, uint64(len(m.Readings)))
	for i := range m.Readings {
		r := &m.Readings[i]
		dst = appendStr(dst, r.Point)
		dst = binary.AppendVarint(dst, r.TS.UnixMilli()-base)
		dst = appendValue(dst, r.Value)
		dst = appendStr(dst, r.Unit)
		dst = append(dst, byte(r.Quality), byte(r.Alarm))
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Events)))
	for i := range m.Events {
		e := &m.Events[i]
		dst = appendStr(dst, e.ID)
		dst = append(dst, byte(e.Type))
		for _, s := range []string{e.State, e.Point, e.Interlock, e.Subject} {
			dst = appendStr(dst, s)
		}
		dst = binary.AppendVarint(dst, e.TS.UnixMilli()-base)
		dst = appendStr(dst, e.Level)
		dst = appendValue(dst, e.Value)
		dst = appendValue(dst, e.Threshold)
		dst = appendStr(dst, e.Unit)
		dst = binary.AppendUvarint(dst, uint64(len(e.Actions)))
		for _, a := range e.Actions {
			dst = appendStr(dst, a.Device)
			dst = appendStr(dst, a.Table)
			dst = binary.AppendUvarint(dst, uint64(a.Address))
			dst = appendValue(dst, a.Write)
			dst = appendValue(dst, a.ReadBack)
			dst = appendStr(dst, a.Error)
		}
		dst = binary.AppendUvarint(dst, uint64(len(e.Ranges)))
		for _, r := range e.Ranges {
			dst = binary.AppendUvarint(dst, r.First)
			dst = binary.AppendUvarint(dst, r.Last-r.First)
		}
		dst = binary.AppendUvarint(dst, e.Count)
		dst = appendStr(dst, e.Message)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Stats)))
	for i := range m.Stats {
		s := &m.Stats[i]
		dst = appendStr(dst, s.Point)
		dst = append(dst, byte(s.Period))
		dst = binary.AppendVarint(dst, s.Start.UnixMilli()-base)
		dst = appendStr(dst, s.Unit)
		for _, f := range []float64{s.Avg, s.Min, s.Max} {
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
		}
		dst = binary.AppendUvarint(dst, uint64(s.Count))
		dst = append(dst, byte(s.Quality))
	}
	return appendExtension(dst, m)
}

// appendExtension writes version 2's additions: (index, fault) of readings
// that name a fault, (index, reason, by) of events that carry them.
func appendExtension(dst []byte, m *edge.Message) []byte {
	n := 0
	for i := range m.Readings {
		if m.Readings[i].Fault != "" {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range m.Readings {
		if f := m.Readings[i].Fault; f != "" {
			dst = binary.AppendUvarint(dst, uint64(i))
			dst = appendStr(dst, f)
		}
	}
	n = 0
	for i := range m.Events {
		if m.Events[i].Reason != "" || m.Events[i].By != "" {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range m.Events {
		if e := &m.Events[i]; e.Reason != "" || e.By != "" {
			dst = binary.AppendUvarint(dst, uint64(i))
			dst = appendStr(dst, e.Reason)
			dst = appendStr(dst, e.By)
		}
	}
	return dst
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendValue(dst []byte, v edge.Value) []byte {
	switch v.Kind {
	case edge.Number:
		dst = append(dst, tagNum)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(v.Num))
	case edge.Bool:
		if v.Bool {
			return append(dst, tagTrue)
		}
		return append(dst, tagFalse)
	case edge.String:
		return appendStr(append(dst, tagStr), v.Str)
	}
	return append(dst, tagNull)
}

// reader decodes with sticky errors, so the decoder reads straight through.
type reader struct {
	b   []byte
	err error
	loc *time.Location
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *reader) byte1() byte {
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a list length, refusing one larger than the bytes left could
// hold (each element takes at least min bytes).
func (r *reader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.fail("list longer than the record")
		return 0
	}
	return int(n)
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string longer than the record")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) f64() float64 {
	if len(r.b) < 8 {
		r.fail("truncated float")
		return 0
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return f
}

func (r *reader) value() edge.Value {
	switch t := r.byte1(); t {
	case tagNull:
		return edge.Value{}
	case tagNum:
		return edge.Num(r.f64())
	case tagFalse:
		return edge.BoolValue(false)
	case tagTrue:
		return edge.BoolValue(true)
	case tagStr:
		return edge.Str(r.str())
	default:
		r.fail(fmt.Sprintf("value tag %d", t))
		return edge.Value{}
	}
}

func (r *reader) time(base int64) time.Time {
	d := r.varint()
	return time.UnixMilli(base + d).In(r.loc)
}

// DecodeRecord decodes a record written by EncodeRecord. Times are given in
// loc (nil: UTC). It never panics on bad input.
// RecordKind is the kind of the message a record holds, read without
// decoding it (0 when the record is too short to tell).
func RecordKind(b []byte) edge.Kind {
	switch {
	case len(b) > 5 && b[0] == 3:
		return edge.Kind(b[5])
	case len(b) > 1 && (b[0] == 1 || b[0] == 2):
		return edge.Kind(b[1])
	}
	return 0
}

func DecodeRecord(b []byte, seq uint64, loc *time.Location) (*edge.Message, error) {
	if loc == nil {
		loc = time.UTC
	}
	r := &reader{b: b, loc: loc}
	version := r.byte1()
	switch {
	case r.err != nil:
		return nil, r.err
	case version == 3:
		if len(r.b) < 4 {
			return nil, fmt.Errorf("%w: truncated checksum", ErrCorrupt)
		}
		want := binary.BigEndian.Uint32(r.b)
		r.b = r.b[4:]
		if got := recordCRC(seq, r.b); got != want {
			return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
		}
	case version != 1 && version != 2:
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, version)
	}
	m := &edge.Message{Seq: seq, Kind: edge.Kind(r.byte1())}
	base := r.varint()
	m.Created = time.UnixMilli(base).In(loc)
	if n := r.count(7); n > 0 {
		m.Readings = make([]edge.Reading, n)
		for i := range m.Readings {
			x := &m.Readings[i]
			x.Point = r.str()
			x.TS = r.time(base)
			x.Value = r.value()
			x.Unit = r.str()
			x.Quality = edge.Quality(r.byte1())
			x.Alarm = edge.Level(r.byte1())
		}
	}
	if n := r.count(16); n > 0 {
		m.Events = make([]edge.Event, n)
		for i := range m.Events {
			e := &m.Events[i]
			e.ID = r.str()
			e.Type = edge.EventType(r.byte1())
			e.State, e.Point, e.Interlock, e.Subject = r.str(), r.str(), r.str(), r.str()
			e.TS = r.time(base)
			e.Level = r.str()
			e.Value = r.value()
			e.Threshold = r.value()
			e.Unit = r.str()
			if k := r.count(6); k > 0 {
				e.Actions = make([]edge.Action, k)
				for j := range e.Actions {
					a := &e.Actions[j]
					a.Device, a.Table = r.str(), r.str()
					addr := r.uvarint()
					if addr > math.MaxUint16 {
						r.fail("address")
					}
					a.Address = uint16(addr)
					a.Write, a.ReadBack = r.value(), r.value()
					a.Error = r.str()
				}
			}
			if k := r.count(2); k > 0 {
				e.Ranges = make([]edge.SeqRange, k)
				for j := range e.Ranges {
					first := r.uvarint()
					span := r.uvarint()
					if first+span < first {
						r.fail("range overflows")
					}
					e.Ranges[j] = edge.SeqRange{First: first, Last: first + span}
				}
			}
			e.Count = r.uvarint()
			e.Message = r.str()
		}
	}
	if n := r.count(30); n > 0 {
		m.Stats = make([]edge.Stat, n)
		for i := range m.Stats {
			s := &m.Stats[i]
			s.Point = r.str()
			s.Period = edge.Period(r.byte1())
			s.Start = r.time(base)
			s.Unit = r.str()
			s.Avg, s.Min, s.Max = r.f64(), r.f64(), r.f64()
			c := r.uvarint()
			if c > math.MaxUint32 {
				r.fail("stat count")
			}
			s.Count = uint32(c)
			s.Quality = edge.Quality(r.byte1())
		}
	}
	if version >= 2 {
		for n := r.count(2); n > 0; n-- {
			i, f := r.uvarint(), r.str()
			if i >= uint64(len(m.Readings)) {
				r.fail("fault of a reading that is not there")
				break
			}
			m.Readings[i].Fault = f
		}
		for n := r.count(3); n > 0; n-- {
			i, reason, by := r.uvarint(), r.str(), r.str()
			if i >= uint64(len(m.Events)) {
				r.fail("reason of an event that is not there")
				break
			}
			m.Events[i].Reason, m.Events[i].By = reason, by
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return m, nil
}
