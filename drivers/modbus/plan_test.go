package modbus

import (
	"fmt"
	"testing"
)

func reg(addr uint16, typ Type) Spec {
	return Spec{Table: HoldingRegisters, Address: addr, Type: typ, Bit: -1}
}

func blocks(p *Plan) string {
	s := ""
	for _, b := range p.Blocks {
		s += fmt.Sprintf("[%s %v]", b, b.Points)
	}
	return s
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name  string
		specs []Spec
		lim   Limits
		want  string
	}{
		{"contiguous", []Spec{reg(0, Uint16), reg(1, Float32), reg(3, Int64)}, Limits{MaxGap: 0}, "[holding 0+7 [0 1 2]]"},
		{"gap within max", []Spec{reg(0, Uint16), reg(10, Uint16)}, Limits{MaxGap: 9}, "[holding 0+11 [0 1]]"},
		{"gap too wide", []Spec{reg(0, Uint16), reg(10, Uint16)}, Limits{MaxGap: 8}, "[holding 0+1 [0]][holding 10+1 [1]]"},
		{"size limit", []Spec{reg(0, Uint16), reg(120, Float64), reg(122, Float64)}, Limits{MaxGap: 200}, "[holding 0+124 [0 1]][holding 122+4 [2]]"},
		{"tables apart, sorted", []Spec{reg(5, Uint16), {Table: Coils, Address: 3}, {Table: Coils, Address: 0}}, Limits{MaxGap: 10},
			"[coil 0+4 [2 1]][holding 5+1 [0]]"},
		{"coil limit", []Spec{{Table: Coils, Address: 0}, {Table: Coils, Address: 1999}, {Table: Coils, Address: 2000}}, Limits{MaxGap: 2000},
			"[coil 0+2000 [0 1]][coil 2000+1 [2]]"},
		{"overlapping bit points", []Spec{{Table: HoldingRegisters, Address: 7, Type: Bool, Bit: 1}, {Table: HoldingRegisters, Address: 7, Type: Bool, Bit: 2}}, Limits{},
			"[holding 7+1 [0 1]]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := blocks(NewPlan(c.specs, c.lim)); got != c.want {
				t.Fatalf("got %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestPlanSplit(t *testing.T) {
	p := NewPlan([]Spec{reg(0, Uint16), reg(1, Uint16), reg(5, Uint16), reg(6, Uint16)}, Limits{MaxGap: 10})
	if got := blocks(p); got != "[holding 0+7 [0 1 2 3]]" {
		t.Fatal(got)
	}
	if !p.Split(0) {
		t.Fatal("split refused")
	}
	if got := blocks(p); got != "[holding 0+2 [0 1]][holding 5+2 [2 3]]" {
		t.Fatalf("first split: %s", got)
	}
	if !p.Split(1) {
		t.Fatal("second split refused")
	}
	if got := blocks(p); got != "[holding 0+2 [0 1]][holding 5+1 [2]][holding 6+1 [3]]" {
		t.Fatalf("second split: %s", got)
	}
	if p.Split(1) {
		t.Fatal("a single-point block split")
	}
	same := NewPlan([]Spec{{Table: HoldingRegisters, Address: 9, Type: Bool, Bit: 0}, {Table: HoldingRegisters, Address: 9, Type: Bool, Bit: 1}}, Limits{})
	if same.Split(0) {
		t.Fatal("split two points on the same rejected register")
	}
}

// TestPlanSplitIsolatesHole: bisection finds a rejected address among 100
// points in a handful of extra blocks.
func TestPlanSplitIsolatesHole(t *testing.T) {
	var specs []Spec
	for a := 0; a < 100; a++ {
		specs = append(specs, reg(uint16(a), Uint16))
	}
	p := NewPlan(specs, Limits{MaxGap: 10})
	const hole = 37
	for round := 0; round < 20; round++ {
		bad := -1
		for k, b := range p.Blocks {
			if int(b.Start) <= hole && hole < int(b.Start)+int(b.Count) && len(b.Points) > 1 {
				bad = k
			}
		}
		if bad < 0 {
			break
		}
		p.Split(bad)
	}
	if n := len(p.Blocks); n > 8 {
		t.Fatalf("%d blocks after isolating one address: %s", n, blocks(p))
	}
	t.Logf("%d blocks: %s", len(p.Blocks), blocks(p))
}

// TestDefaultOptsAreTheConstructors: a device or plan given zero options
// behaves as DefaultDeviceOpts says (the config applies those numbers).
func TestDefaultOptsAreTheConstructors(t *testing.T) {
	do := DefaultDeviceOpts()
	line, err := NewLine(LineOpts{Name: "l", Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDevice(line, DeviceOpts{Name: "d", Unit: 1})
	if d.opts.Timeout != do.Timeout || d.opts.ProbeEvery != do.ProbeEvery {
		t.Errorf("NewDevice fills in timeout %v, probe every %d; DefaultDeviceOpts says %v, %d", d.opts.Timeout, d.opts.ProbeEvery, do.Timeout, do.ProbeEvery)
	}
	p := NewPlan(nil, Limits{})
	if p.lim.MaxRegisters != do.Limits.MaxRegisters || p.lim.MaxBits != do.Limits.MaxBits {
		t.Errorf("NewPlan fills in %+v; DefaultDeviceOpts says %+v", p.lim, do.Limits)
	}
}
