package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hazwatch/edgecollector/edge"
)

// ErrDecode marks bytes that do not hold a value of the point's type (a BCD
// nibble above 9, a short block).
var ErrDecode = errors.New("cannot decode")

// normalize returns the value's bytes most significant first, undoing the
// order: registers are 2-byte big-endian words as they arrive on the wire.
// Numeric values (at most 8 bytes) are put in buf, so decoding a point
// does not allocate.
func normalize(raw []byte, o Order, buf *[8]byte) []byte {
	n := len(raw) / 2
	var out []byte
	if len(raw) <= len(buf) {
		out = buf[:len(raw)]
	} else {
		out = make([]byte, len(raw))
	}
	for i := range n {
		w := i
		if o.SwapWords() {
			w = n - 1 - i
		}
		hi, lo := raw[2*w], raw[2*w+1]
		if o.SwapBytes() {
			hi, lo = lo, hi
		}
		out[2*i], out[2*i+1] = hi, lo
	}
	return out
}

// DecodeRegisters decodes a register point from its registers' bytes
// (2×Registers() bytes, as read).
func DecodeRegisters(s Spec, raw []byte) (edge.Value, error) {
	want := 2 * s.Type.Registers(s.Length)
	if len(raw) != want {
		return edge.Value{}, fmt.Errorf("%w: %s needs %d bytes, got %d", ErrDecode, s.Type, want, len(raw))
	}
	if s.Type == String {
		return decodeString(raw, s.Order), nil
	}
	if s.Type == Bool {
		if s.Bit < 0 || s.Bit > 15 {
			return edge.Value{}, fmt.Errorf("%w: bit %d", ErrDecode, s.Bit)
		}
		var buf [8]byte
		w := binary.BigEndian.Uint16(normalize(raw, s.Order, &buf))
		return edge.BoolValue(w>>uint(s.Bit)&1 == 1), nil
	}
	var buf [8]byte
	b := normalize(raw, s.Order, &buf)
	if s.Width > 0 {
		if s.Type.Registers(0) != 1 || s.Bit < 0 || s.Bit+s.Width > 16 {
			return edge.Value{}, fmt.Errorf("%w: bits %d-%d of a %s", ErrDecode, s.Bit, s.Bit+s.Width-1, s.Type)
		}
		w := binary.BigEndian.Uint16(b)
		return edge.Num(float64(w >> uint(s.Bit) & (1<<uint(s.Width) - 1))), nil
	}
	switch s.Type {
	case Int16:
		return edge.Num(float64(int16(binary.BigEndian.Uint16(b)))), nil
	case Uint16:
		return edge.Num(float64(binary.BigEndian.Uint16(b))), nil
	case Int32:
		return edge.Num(float64(int32(binary.BigEndian.Uint32(b)))), nil
	case Uint32:
		return edge.Num(float64(binary.BigEndian.Uint32(b))), nil
	case Float32:
		return edge.Num(widen(math.Float32frombits(binary.BigEndian.Uint32(b)))), nil
	case Int64:
		return edge.Num(float64(int64(binary.BigEndian.Uint64(b)))), nil
	case Uint64:
		return edge.Num(float64(binary.BigEndian.Uint64(b))), nil
	case Float64:
		return edge.Num(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
	case BCD16, BCD32:
		var v uint64
		for _, c := range b {
			hi, lo := c>>4, c&0xF
			if hi > 9 || lo > 9 {
				return edge.Value{}, fmt.Errorf("%w: BCD byte %#02x has a nibble above 9", ErrDecode, c)
			}
			v = v*100 + uint64(hi)*10 + uint64(lo)
		}
		return edge.Num(float64(v)), nil
	}
	return edge.Value{}, fmt.Errorf("%w: type %s", ErrDecode, s.Type)
}

// widen gives the float64 a float32 stands for: the shortest decimal that
// reads back as the same float32 (8.2, not 8.199999809265137). NaN and
// infinities pass through (the edge marks them sensor_fault).
func widen(f float32) float64 {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return float64(f)
	}
	var buf [32]byte
	v, err := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)), 64)
	if err != nil {
		return float64(f)
	}
	return v
}

// decodeString reads 2 ASCII characters per register (bytes swapped under
// BADC/DCBA), stopping at the first NUL and trimming trailing spaces.
func decodeString(raw []byte, o Order) edge.Value {
	b := make([]byte, len(raw))
	copy(b, raw)
	if o.SwapBytes() {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	s := strings.TrimRight(string(b), " ")
	return edge.Str(strings.ToValidUTF8(s, "?"))
}

// Bit returns bit i of a coil or discrete-input response (LSB first).
func Bit(data []byte, i int) (bool, error) {
	if i < 0 || i/8 >= len(data) {
		return false, fmt.Errorf("%w: bit %d of %d bytes", ErrDecode, i, len(data))
	}
	return data[i/8]>>(uint(i)%8)&1 == 1, nil
}

// EncodeRegister is the inverse for a single-register output value, for
// interlock writes: a whole number from -32768 to 65535.
func EncodeRegister(v float64) (uint16, error) {
	if v != math.Trunc(v) || v < -32768 || v > 65535 {
		return 0, fmt.Errorf("value %g does not fit one register", v)
	}
	if v < 0 {
		return uint16(int16(v)), nil
	}
	return uint16(v), nil
}
