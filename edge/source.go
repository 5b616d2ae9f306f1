package edge

import (
	"context"
)

// Raw is one point's value as a driver read it, before conversion.
type Raw struct {
	Value   Value
	Quality Quality // Good, or why there is no value
	Err     error   // what went wrong, naming bus, unit and address
	// Diag are the words of the point's diagnostic registers (in the order
	// of its diagnostics), read with the value; DiagErr says why they could
	// not be read (then DiagQuality is the quality that gives).
	Diag        []uint16
	DiagErr     error
	DiagQuality Quality
}

// Source reads a fixed set of points from one device, in one call per poll.
// It is built by its driver for one poll group.
type Source interface {
	// Read fills out[i] for the i-th point the source was built with.
	Read(ctx context.Context, out []Raw)
	String() string
}

// OutputTable is where an interlock writes.
type OutputTable uint8

// Output tables.
const (
	OutputCoil OutputTable = iota + 1
	OutputHolding
)

func (t OutputTable) String() string {
	if t == OutputCoil {
		return "coil"
	}
	return "holding"
}

// Writer writes interlock outputs to one device. Writes jump the line's
// queue.
type Writer interface {
	// WriteOutput writes value (coil: 0 or 1) to the output.
	WriteOutput(ctx context.Context, table OutputTable, addr uint16, value float64) error
	// ReadOutput reads the output back, as proof of the write.
	ReadOutput(ctx context.Context, table OutputTable, addr uint16) (float64, error)
	String() string
}
