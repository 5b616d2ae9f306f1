package buffer

import (
	"math/rand/v2"
	"testing"

	"github.com/hazwatch/edgecollector/edge"
)

// TestAckSetMatchesMap checks the range set against a plain map under random
// adds, including out-of-order and repeated ones.
func TestAckSetMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var a ackSet
		m := map[uint64]bool{}
		for range 300 {
			f := uint64(rng.IntN(400))
			l := f + uint64(rng.IntN(4))
			added := a.AddRange(f, l)
			var want uint64
			for s := f; s <= l; s++ {
				if !m[s] {
					want++
					m[s] = true
				}
			}
			if added != want {
				t.Fatalf("round %d: AddRange(%d,%d) added %d, want %d", round, f, l, added, want)
			}
		}
		for s := uint64(0); s < 410; s++ {
			if a.Contains(s) != m[s] {
				t.Fatalf("round %d: Contains(%d)=%v want %v; ranges %v", round, s, a.Contains(s), m[s], a.r)
			}
		}
		for i := 1; i < len(a.r); i++ {
			if a.r[i].First <= a.r[i-1].Last+1 {
				t.Fatalf("ranges not disjoint and merged: %v", a.r)
			}
		}
		var b ackSet
		if err := b.unmarshal(a.marshal()); err != nil || len(b.r) != len(a.r) {
			t.Fatalf("round trip: %v %v %v", err, a.r, b.r)
		}
		from := uint64(rng.IntN(400))
		nm := a.NextMissing(from)
		for s := from; s < nm; s++ {
			if !m[s] {
				t.Fatalf("NextMissing(%d)=%d but %d is missing", from, nm, s)
			}
		}
		if m[nm] {
			t.Fatalf("NextMissing(%d)=%d is in the set", from, nm)
		}
		if got, want := a.CountIn(100, 200), countMap(m, 100, 200); got != want {
			t.Fatalf("CountIn=%d want %d", got, want)
		}
	}
}

func countMap(m map[uint64]bool, f, l uint64) uint64 {
	var n uint64
	for s := f; s <= l; s++ {
		if m[s] {
			n++
		}
	}
	return n
}

func FuzzAckSetUnmarshal(f *testing.F) {
	a := ackSet{r: []edge.SeqRange{{First: 1, Last: 5}, {First: 9, Last: 9}}}
	f.Add(a.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		var a ackSet
		if a.unmarshal(b) != nil {
			return
		}
		for i := 1; i < len(a.r); i++ {
			if a.r[i].First <= a.r[i-1].Last+1 {
				t.Fatalf("accepted overlapping ranges %v", a.r)
			}
		}
	})
}
