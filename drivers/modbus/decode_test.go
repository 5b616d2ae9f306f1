package modbus

import (
	"math"
	"testing"

	"github.com/hazwatch/edgecollector/edge"
)

// Bytes are written as they arrive on the wire; the expected values are
// worked out by hand from the byte order names.
func TestDecodeRegisters(t *testing.T) {
	f32 := []byte{0x41, 0x48, 0x00, 0x00} // 12.5 as ABCD
	cases := []struct {
		name string
		typ  Type
		ord  Order
		raw  []byte
		want edge.Value
	}{
		{"int16", Int16, ABCD, []byte{0xFF, 0x85}, edge.Num(-123)},
		{"int16 BA", Int16, BADC, []byte{0x85, 0xFF}, edge.Num(-123)},
		{"uint16", Uint16, ABCD, []byte{0xFF, 0x85}, edge.Num(65413)},
		{"uint16 DCBA", Uint16, DCBA, []byte{0x85, 0xFF}, edge.Num(65413)},
		{"uint16 CDAB is one word", Uint16, CDAB, []byte{0xFF, 0x85}, edge.Num(65413)},
		{"int32 ABCD", Int32, ABCD, []byte{0xFF, 0xFE, 0x1D, 0xC0}, edge.Num(-123456)},
		{"int32 CDAB", Int32, CDAB, []byte{0x1D, 0xC0, 0xFF, 0xFE}, edge.Num(-123456)},
		{"int32 BADC", Int32, BADC, []byte{0xFE, 0xFF, 0xC0, 0x1D}, edge.Num(-123456)},
		{"int32 DCBA", Int32, DCBA, []byte{0xC0, 0x1D, 0xFE, 0xFF}, edge.Num(-123456)},
		{"uint32", Uint32, ABCD, []byte{0x00, 0x01, 0xE2, 0x40}, edge.Num(123456)},
		{"float32 ABCD", Float32, ABCD, f32, edge.Num(12.5)},
		{"float32 CDAB", Float32, CDAB, []byte{0x00, 0x00, 0x41, 0x48}, edge.Num(12.5)},
		{"float32 BADC", Float32, BADC, []byte{0x48, 0x41, 0x00, 0x00}, edge.Num(12.5)},
		{"float32 DCBA", Float32, DCBA, []byte{0x00, 0x00, 0x48, 0x41}, edge.Num(12.5)},
		{"int64 ABCDEFGH", Int64, ABCD, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE}, edge.Num(-2)},
		{"uint64 GHEFCDAB", Uint64, CDAB, []byte{0x00, 0x08, 0x00, 0x04, 0x00, 0x02, 0x00, 0x01}, edge.Num(0x0001000200040008)},
		{"uint64 BADCFEHG", Uint64, BADC, []byte{0x01, 0x00, 0x02, 0x00, 0x04, 0x00, 0x08, 0x00}, edge.Num(0x0001000200040008)},
		{"uint64 HGFEDCBA", Uint64, DCBA, []byte{0x08, 0x00, 0x04, 0x00, 0x02, 0x00, 0x01, 0x00}, edge.Num(0x0001000200040008)},
		{"float64", Float64, ABCD, []byte{0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18}, edge.Num(math.Pi)},
		{"bcd16", BCD16, ABCD, []byte{0x12, 0x34}, edge.Num(1234)},
		{"bcd32 CDAB", BCD32, CDAB, []byte{0x56, 0x78, 0x12, 0x34}, edge.Num(12345678)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeRegisters(Spec{Type: c.typ, Order: c.ord, Bit: -1}, c.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
}

func TestDecodeStringsBitsAndErrors(t *testing.T) {
	v, err := DecodeRegisters(Spec{Type: String, Length: 3}, []byte("GT-1\x00\x00"))
	if err != nil || v != edge.Str("GT-1") {
		t.Fatalf("string: %v %v", v, err)
	}
	v, _ = DecodeRegisters(Spec{Type: String, Length: 2, Order: BADC}, []byte("TG1-"))
	if v != edge.Str("GT-1") {
		t.Fatalf("byte-swapped string: %v", v)
	}
	v, _ = DecodeRegisters(Spec{Type: Bool, Bit: 9}, []byte{0x02, 0x00})
	if v != edge.BoolValue(true) {
		t.Fatalf("bit 9 of 0x0200: %v", v)
	}
	if _, err := DecodeRegisters(Spec{Type: BCD16}, []byte{0x1A, 0x00}); err == nil {
		t.Fatal("BCD nibble A accepted")
	}
	if _, err := DecodeRegisters(Spec{Type: Float32}, []byte{1, 2}); err == nil {
		t.Fatal("short float accepted")
	}
	if b, err := Bit([]byte{0x00, 0x04}, 10); err != nil || !b {
		t.Fatalf("coil 10: %v %v", b, err)
	}
	if _, err := Bit([]byte{0}, 8); err == nil {
		t.Fatal("bit past the answer accepted")
	}
}

// FuzzDecodeRegisters: no byte string from a device makes decoding panic.
func FuzzDecodeRegisters(f *testing.F) {
	f.Add(uint8(Float32), uint8(CDAB), 0, 0, []byte{0, 0, 0x41, 0x48})
	f.Add(uint8(String), uint8(BADC), 0, 2, []byte("TG1-"))
	f.Add(uint8(Bool), uint8(ABCD), 15, 0, []byte{0x80, 0})
	f.Fuzz(func(t *testing.T, typ, ord uint8, bit, length int, raw []byte) {
		s := Spec{Table: HoldingRegisters, Type: Type(typ % 13), Order: Order(ord % 4), Bit: bit, Length: length % 130}
		v, err := DecodeRegisters(s, raw)
		if err == nil && s.Type != String && s.Type != Bool && v.Kind != edge.Number {
			t.Fatalf("numeric type %s decoded to %v", s.Type, v)
		}
		Bit(raw, bit)
	})
}

// FuzzRTUResync: any bytes on the line give a sane answer length and a
// resync that only ever drops a prefix.
func FuzzRTUResync(f *testing.F) {
	f.Add([]byte{1, 3, 0, 0, 0, 2, 0xC4, 0x0B}, []byte{1, 3, 0xFF, 1, 3, 4, 0, 1, 0, 2, 0, 0})
	f.Add([]byte{1, 1, 0, 0, 0, 9, 0, 0}, []byte{1, 0x81, 2, 0, 0})
	f.Fuzz(func(t *testing.T, req, line []byte) {
		if len(req) < 8 {
			return
		}
		b := resync(req, line)
		if len(b) > len(line) || (len(b) > 0 && &b[len(b)-1] != &line[len(line)-1]) {
			t.Fatalf("resync did not return a suffix")
		}
		if n := answerLength(req, b); n < 5 || n > 256 {
			t.Fatalf("answer length %d", n)
		}
	})
}
