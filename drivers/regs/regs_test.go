package regs

import (
	"strings"
	"testing"
)

func TestNamesRoundTrip(t *testing.T) {
	for i, n := range TableNames {
		tab, err := ParseTable(n)
		if err != nil || tab.String() != n || int(tab.Function()) != i+1 {
			t.Errorf("table %s: %v %v function %d", n, tab, err, tab.Function())
		}
	}
	for _, n := range TypeNames {
		ty, err := ParseType(n)
		if err != nil || ty.String() != n {
			t.Errorf("type %s: %v %v", n, ty, err)
		}
	}
	for i := range OrderNames {
		for _, n := range []string{OrderNames[i], OrderNames64[i]} {
			o, err := ParseOrder(n)
			if err != nil || o != Order(i) || o.String() != OrderNames[i] {
				t.Errorf("order %s: %v %v", n, o, err)
			}
		}
	}
}

func TestRegisters(t *testing.T) {
	for _, tc := range []struct {
		typ  Type
		want int
	}{{Bool, 1}, {Int16, 1}, {Uint16, 1}, {BCD16, 1}, {Int32, 2}, {Uint32, 2}, {Float32, 2}, {BCD32, 2},
		{Int64, 4}, {Uint64, 4}, {Float64, 4}, {String, 7}} {
		if got := tc.typ.Registers(7); got != tc.want {
			t.Errorf("%s spans %d registers, want %d", tc.typ, got, tc.want)
		}
		if tc.typ.Wide() != (tc.want == 4) {
			t.Errorf("%s: Wide() = %v", tc.typ, tc.typ.Wide())
		}
	}
}

// TestOrderFor: the 64-bit spellings are for 64-bit types only, the 32-bit
// ones for every type; DESIGN.md's pairs map to the same order.
func TestOrderFor(t *testing.T) {
	pairs := map[string]string{"ABCD": "ABCDEFGH", "CDAB": "GHEFCDAB", "BADC": "BADCFEHG", "DCBA": "HGFEDCBA"}
	for n32, n64 := range pairs {
		for i := range TypeNames {
			ty := Type(i + 1)
			o32, err := OrderFor(n32, ty)
			if err != nil {
				t.Errorf("%s for %s: %v", n32, ty, err)
			}
			o64, err := OrderFor(n64, ty)
			switch {
			case ty.Wide() && (err != nil || o64 != o32):
				t.Errorf("%s for %s: %v, %v; want %v", n64, ty, o64, err, o32)
			case !ty.Wide() && (err == nil || !strings.Contains(err.Error(), "write "+n32)):
				t.Errorf("%s for %s: want a refusal naming %s, got %v", n64, ty, n32, err)
			}
		}
	}
	for _, bad := range []string{"", "abcd", "AB", "BA", "ABDC", "ABCDEFG"} {
		if _, err := ParseOrder(bad); err == nil {
			t.Errorf("ParseOrder(%q) accepted", bad)
		}
	}
}
