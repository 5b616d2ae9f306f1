package modbus

import (
	"fmt"
	"sort"

	"github.com/hazwatch/edgecollector/drivers/regs"
)

// Block is one read request covering several points.
type Block struct {
	Table  Table
	Start  uint16
	Count  uint16 // registers, or bits for coils and discrete inputs
	Points []int  // indexes into the plan's specs
}

func (b Block) String() string {
	return fmt.Sprintf("%s %d+%d", b.Table, b.Start, b.Count)
}

// Limits bound block reads.
type Limits struct {
	MaxRegisters int // per request, <= regs.MaxReadRegisters
	MaxBits      int // per request, <= regs.MaxReadBits
	MaxGap       int // unused registers (or bits) a block may span
}

// Plan is the requests that read a set of points from one device.
type Plan struct {
	Specs  []Spec
	Blocks []Block
	lim    Limits
}

// NewPlan coalesces points on the same table into as few block reads as the
// limits allow. Points are given by index in specs.
func NewPlan(specs []Spec, lim Limits) *Plan {
	if lim.MaxRegisters <= 0 || lim.MaxRegisters > regs.MaxReadRegisters {
		lim.MaxRegisters = regs.MaxReadRegisters
	}
	if lim.MaxBits <= 0 || lim.MaxBits > regs.MaxReadBits {
		lim.MaxBits = regs.MaxReadBits
	}
	lim.MaxGap = max(lim.MaxGap, 0)
	p := &Plan{Specs: specs, lim: lim}
	idx := make([]int, len(specs))
	for i := range idx {
		idx[i] = i
	}
	p.Blocks = p.group(idx, lim.MaxGap)
	return p
}

// group builds blocks over the given points with the given largest gap.
func (p *Plan) group(idx []int, gap int) []Block {
	idx = append([]int(nil), idx...)
	sort.SliceStable(idx, func(a, b int) bool {
		sa, sb := p.Specs[idx[a]], p.Specs[idx[b]]
		if sa.Table != sb.Table {
			return sa.Table < sb.Table
		}
		return sa.Address < sb.Address
	})
	var out []Block
	for _, i := range idx {
		s := p.Specs[i]
		end := int(s.Address) + s.Registers()
		limit := p.lim.MaxRegisters
		if s.Table.Bits() {
			limit = p.lim.MaxBits
		}
		if n := len(out); n > 0 {
			b := &out[n-1]
			bEnd := int(b.Start) + int(b.Count)
			if b.Table == s.Table && int(s.Address) <= bEnd+gap && max(end, bEnd)-int(b.Start) <= limit {
				b.Count = uint16(max(end, bEnd) - int(b.Start))
				b.Points = append(b.Points, i)
				continue
			}
		}
		out = append(out, Block{Table: s.Table, Start: s.Address, Count: uint16(end - int(s.Address)), Points: []int{i}})
	}
	return out
}

// Split replaces block k, which the device rejected with an illegal-address
// exception, by its two halves (by point), each grouped again with the same
// limits. Repeated on the half that is still rejected, it isolates the
// rejected address in a few requests, and the blocks it leaves never span
// it again. It reports whether the block could be split: a single-point
// block cannot (that point's own address is rejected).
func (p *Plan) Split(k int) bool {
	b := p.Blocks[k]
	if len(b.Points) <= 1 {
		return false
	}
	pts := append([]int(nil), b.Points...)
	sort.SliceStable(pts, func(i, j int) bool { return p.Specs[pts[i]].Address < p.Specs[pts[j]].Address })
	half := len(pts) / 2
	// Points sharing the address at the cut stay together.
	for half < len(pts) && half > 0 && p.Specs[pts[half]].Address == p.Specs[pts[half-1]].Address {
		half++
	}
	if half == len(pts) {
		half = len(pts) / 2
		for half > 0 && p.Specs[pts[half]].Address == p.Specs[pts[half-1]].Address {
			half--
		}
		if half == 0 {
			return false // every point reads the same rejected address
		}
	}
	parts := append(p.group(pts[:half], p.lim.MaxGap), p.group(pts[half:], p.lim.MaxGap)...)
	p.Blocks = append(p.Blocks[:k], append(parts, p.Blocks[k+1:]...)...)
	return true
}

// Offset is where point i starts within block b, in bytes (registers) or
// bits (coils and discrete inputs).
func (b Block) Offset(s Spec) int {
	d := int(s.Address) - int(b.Start)
	if b.Table.Bits() {
		return d
	}
	return 2 * d
}
