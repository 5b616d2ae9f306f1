package modbus

import (
	"fmt"
	"strings"
)

// Table is a Modbus data table.
type Table uint8

// Tables, with their read function codes.
const (
	Coils Table = iota + 1
	DiscreteInputs
	HoldingRegisters
	InputRegisters
)

// ParseTable maps the config names coil, discrete, holding, input.
func ParseTable(s string) (Table, error) {
	switch s {
	case "coil":
		return Coils, nil
	case "discrete":
		return DiscreteInputs, nil
	case "holding":
		return HoldingRegisters, nil
	case "input":
		return InputRegisters, nil
	}
	return 0, fmt.Errorf("unknown table %q", s)
}

func (t Table) String() string {
	switch t {
	case Coils:
		return "coil"
	case DiscreteInputs:
		return "discrete"
	case HoldingRegisters:
		return "holding"
	case InputRegisters:
		return "input"
	}
	return fmt.Sprintf("table(%d)", uint8(t))
}

// Function is the read function code of the table.
func (t Table) Function() byte {
	switch t {
	case Coils:
		return 1
	case DiscreteInputs:
		return 2
	case HoldingRegisters:
		return 3
	case InputRegisters:
		return 4
	}
	return 0
}

// Bits reports whether the table holds single bits.
func (t Table) Bits() bool { return t == Coils || t == DiscreteInputs }

// Type is a data type of a point.
type Type uint8

// Data types.
const (
	Bool Type = iota + 1
	Int16
	Uint16
	Int32
	Uint32
	Float32
	Int64
	Uint64
	Float64
	BCD16
	BCD32
	String
)

var typeNames = map[string]Type{"bool": Bool, "int16": Int16, "uint16": Uint16, "int32": Int32, "uint32": Uint32,
	"float32": Float32, "int64": Int64, "uint64": Uint64, "float64": Float64, "bcd16": BCD16, "bcd32": BCD32, "string": String}

// ParseType maps the config names (see config.DataTypes).
func ParseType(s string) (Type, error) {
	if t, ok := typeNames[s]; ok {
		return t, nil
	}
	return 0, fmt.Errorf("unknown data type %q", s)
}

func (t Type) String() string {
	for n, v := range typeNames {
		if v == t {
			return n
		}
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Registers is how many 16-bit registers a value of this type spans;
// strings span length registers.
func (t Type) Registers(length int) int {
	switch t {
	case Int32, Uint32, Float32, BCD32:
		return 2
	case Int64, Uint64, Float64:
		return 4
	case String:
		return length
	}
	return 1
}

// Order is a byte and word order. The 32-bit names extend to 64 bits as in
// Telegraf: ABCD -> ABCDEFGH, CDAB -> GHEFCDAB, BADC -> BADCFEHG,
// DCBA -> HGFEDCBA. 16-bit values swap bytes under BADC and DCBA.
type Order uint8

// Orders.
const (
	ABCD Order = iota // big-endian words, most significant word first
	CDAB              // least significant word first
	BADC              // bytes swapped within each word
	DCBA              // little-endian
)

// ParseOrder maps ABCD, CDAB, BADC, DCBA (and their 64-bit spellings).
func ParseOrder(s string) (Order, error) {
	switch strings.ToUpper(s) {
	case "", "ABCD", "ABCDEFGH", "AB":
		return ABCD, nil
	case "CDAB", "GHEFCDAB":
		return CDAB, nil
	case "BADC", "BADCFEHG", "BA":
		return BADC, nil
	case "DCBA", "HGFEDCBA":
		return DCBA, nil
	}
	return 0, fmt.Errorf("unknown word order %q", s)
}

func (o Order) String() string {
	return [...]string{"ABCD", "CDAB", "BADC", "DCBA"}[o&3]
}

func (o Order) swapWords() bool { return o == CDAB || o == DCBA }
func (o Order) swapBytes() bool { return o == BADC || o == DCBA }

// Spec says where a point is and how to decode it.
type Spec struct {
	Table   Table
	Address uint16
	Type    Type
	Order   Order
	Bit     int // bool from a register: bit 0-15; -1 otherwise
	Length  int // string: registers
	// Width > 0 reads an unsigned field of Width bits starting at Bit of a
	// 16-bit register (bits "4-5": Bit 4, Width 2).
	Width int
	// Diag are registers (or bits) of the same device the point's
	// diagnostics look at, read in the same block plan; their words reach
	// the engine in edge.Raw.Diag.
	Diag []Spec
}

// Registers is the span of the point in its table (bits for coils).
func (s Spec) Registers() int {
	if s.Table.Bits() {
		return 1
	}
	return s.Type.Registers(s.Length)
}

func (s Spec) String() string {
	return fmt.Sprintf("%s %d %s", s.Table, s.Address, s.Type)
}
