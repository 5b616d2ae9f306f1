package modbus

import (
	"fmt"

	"github.com/hazwatch/edgecollector/drivers/regs"
)

// The register vocabulary lives in package regs, which the config shares;
// these names keep the driver's API.

// Table is a Modbus data table.
type Table = regs.Table

// Tables, with their read function codes.
const (
	Coils            = regs.Coil
	DiscreteInputs   = regs.Discrete
	HoldingRegisters = regs.Holding
	InputRegisters   = regs.Input
)

// Type is a data type of a point.
type Type = regs.Type

// Data types.
const (
	Bool    = regs.Bool
	Int16   = regs.Int16
	Uint16  = regs.Uint16
	Int32   = regs.Int32
	Uint32  = regs.Uint32
	Float32 = regs.Float32
	Int64   = regs.Int64
	Uint64  = regs.Uint64
	Float64 = regs.Float64
	BCD16   = regs.BCD16
	BCD32   = regs.BCD32
	String  = regs.String
)

// Order is a byte and word order (see regs.Order).
type Order = regs.Order

// Orders.
const (
	ABCD = regs.ABCD
	CDAB = regs.CDAB
	BADC = regs.BADC
	DCBA = regs.DCBA
)

// ParseTable maps the config names coil, discrete, holding, input.
func ParseTable(s string) (Table, error) { return regs.ParseTable(s) }

// ParseType maps the config names (regs.TypeNames).
func ParseType(s string) (Type, error) { return regs.ParseType(s) }

// ParseOrder maps ABCD, CDAB, BADC, DCBA and their 64-bit spellings
// (regs.ParseOrder); a point's own order goes through regs.OrderFor.
func ParseOrder(s string) (Order, error) { return regs.ParseOrder(s) }

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
