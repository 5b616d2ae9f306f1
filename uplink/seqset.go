package uplink

import (
	"sort"

	"github.com/hazwatch/edgecollector/edge"
)

// seqSet is a set of seqs as sorted, disjoint, non-adjacent ranges. The seqs
// an uplink sends are nearly contiguous, so it stays a few ranges.
type seqSet struct {
	r []edge.SeqRange
}

// Contains reports whether s is in the set.
func (a *seqSet) Contains(s uint64) bool {
	i := sort.Search(len(a.r), func(i int) bool { return a.r[i].Last >= s })
	return i < len(a.r) && a.r[i].First <= s
}

// Add inserts s.
func (a *seqSet) Add(s uint64) {
	// The first range that s touches or precedes.
	i := sort.Search(len(a.r), func(i int) bool { return a.r[i].Last+1 >= s })
	switch {
	case i < len(a.r) && a.r[i].First <= s && s <= a.r[i].Last:
	case i < len(a.r) && a.r[i].Last+1 == s:
		a.r[i].Last = s
		if i+1 < len(a.r) && a.r[i+1].First == s+1 {
			a.r[i].Last = a.r[i+1].Last
			a.r = append(a.r[:i+1], a.r[i+2:]...)
		}
	case i < len(a.r) && a.r[i].First == s+1:
		a.r[i].First = s
	default:
		a.r = append(a.r, edge.SeqRange{})
		copy(a.r[i+1:], a.r[i:])
		a.r[i] = edge.SeqRange{First: s, Last: s}
	}
}
