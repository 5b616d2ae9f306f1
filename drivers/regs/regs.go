// Package regs is the register vocabulary the config, the Modbus driver and
// the generic I2C driver share: the data tables, the data types with the
// registers each spans, the word orders and the protocol's per-request
// limits. Names here are the config's names; there is no other list.
//
// It imports nothing of the project, so any package may use it.
package regs

import (
	"fmt"
	"strings"
)

// Protocol limits of one Modbus read (Modbus Application Protocol v1.1b3,
// functions 1-4).
const (
	MaxReadRegisters = 125  // registers per read of holding or input registers
	MaxReadBits      = 2000 // coils or discrete inputs per read
	// MaxStringRegisters is the longest string one point may span.
	MaxStringRegisters = MaxReadRegisters
)

// Table is a Modbus data table.
type Table uint8

// Tables, with their read function codes.
const (
	Coil Table = iota + 1
	Discrete
	Holding
	Input
)

// TableNames are the config's names of the tables, in protocol order.
var TableNames = []string{"coil", "discrete", "holding", "input"}

// ParseTable maps the config names coil, discrete, holding, input.
func ParseTable(s string) (Table, error) {
	for i, n := range TableNames {
		if s == n {
			return Table(i + 1), nil
		}
	}
	return 0, fmt.Errorf("unknown table %q; want one of %s", s, strings.Join(TableNames, ", "))
}

func (t Table) String() string {
	if t >= Coil && t <= Input {
		return TableNames[t-1]
	}
	return fmt.Sprintf("table(%d)", uint8(t))
}

// Function is the read function code of the table.
func (t Table) Function() byte {
	if t >= Coil && t <= Input {
		return byte(t)
	}
	return 0
}

// Bits reports whether the table holds single bits.
func (t Table) Bits() bool { return t == Coil || t == Discrete }

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

// TypeNames are the config's names of the types, indexed by Type-1.
var TypeNames = []string{"bool", "int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64", "bcd16", "bcd32", "string"}

// ParseType maps a config name to its type.
func ParseType(s string) (Type, error) {
	for i, n := range TypeNames {
		if s == n {
			return Type(i + 1), nil
		}
	}
	return 0, fmt.Errorf("unknown data type %q; want one of %s", s, strings.Join(TypeNames, ", "))
}

func (t Type) String() string {
	if t >= Bool && t <= String {
		return TypeNames[t-1]
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

// Wide reports whether the type spans 64 bits, the types that take the
// 64-bit spellings of the word orders.
func (t Type) Wide() bool { return t == Int64 || t == Uint64 || t == Float64 }

// Numeric reports whether values of the type are numbers (alarms,
// scaling and ranges apply).
func (t Type) Numeric() bool { return t > Bool && t < String }

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

// OrderNames are the names every type takes, indexed by Order.
var OrderNames = []string{"ABCD", "CDAB", "BADC", "DCBA"}

// OrderNames64 are the 64-bit spellings, indexed by Order: only the 64-bit
// types (int64, uint64, float64) take them.
var OrderNames64 = []string{"ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"}

// ParseOrder maps any spelling of an order, 32- or 64-bit, as a device's
// default for all its points takes. A point's own order goes through
// OrderFor, which knows the type.
func ParseOrder(s string) (Order, error) {
	for i := range OrderNames {
		if s == OrderNames[i] || s == OrderNames64[i] {
			return Order(i), nil
		}
	}
	return 0, fmt.Errorf("unknown word order %q; want one of %s (64-bit types also take %s)",
		s, strings.Join(OrderNames, ", "), strings.Join(OrderNames64, ", "))
}

// OrderFor maps the order of a value of type t: the 64-bit spellings are
// refused for types narrower than 64 bits, as they name bytes such a value
// does not have.
func OrderFor(s string, t Type) (Order, error) {
	o, err := ParseOrder(s)
	if err != nil {
		return 0, err
	}
	if !t.Wide() && s == OrderNames64[o] {
		return 0, fmt.Errorf("word order %s is for 64-bit values (int64, uint64, float64); for a %s write %s, the same order",
			s, t, OrderNames[o])
	}
	return o, nil
}

func (o Order) String() string { return OrderNames[o&3] }

// SwapWords reports whether the least significant word comes first.
func (o Order) SwapWords() bool { return o == CDAB || o == DCBA }

// SwapBytes reports whether the bytes of each word are swapped.
func (o Order) SwapBytes() bool { return o == BADC || o == DCBA }
