package buffer

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/hazwatch/edgecollector/edge"
)

// ackSet is a set of seqs kept as sorted, disjoint, non-adjacent inclusive
// ranges. Acknowledgements arrive mostly in order, so it stays a handful of
// ranges even when live and backlog messages interleave.
type ackSet struct {
	r []edge.SeqRange
}

// find returns the index of the first range whose Last >= s.
func (a *ackSet) find(s uint64) int {
	return sort.Search(len(a.r), func(i int) bool { return a.r[i].Last >= s })
}

func (a *ackSet) Contains(s uint64) bool {
	i := a.find(s)
	return i < len(a.r) && a.r[i].First <= s
}

// Add inserts s; it reports whether s was new.
func (a *ackSet) Add(s uint64) bool { return a.AddRange(s, s) > 0 }

// AddRange inserts [first, last]; it returns how many seqs were new.
func (a *ackSet) AddRange(first, last uint64) uint64 {
	if last < first {
		return 0
	}
	// Ranges that touch or overlap [first-1, last+1] merge.
	lo := first
	if lo > 0 {
		lo--
	}
	i := a.find(lo)
	j := i
	var covered uint64
	nf, nl := first, last
	for j < len(a.r) && (last == ^uint64(0) || a.r[j].First <= last+1) {
		x := a.r[j]
		of, ol := max(x.First, first), min(x.Last, last)
		if of <= ol {
			covered += ol - of + 1
		}
		nf, nl = min(nf, x.First), max(nl, x.Last)
		j++
	}
	added := (last - first + 1) - covered
	merged := edge.SeqRange{First: nf, Last: nl}
	a.r = append(a.r[:i], append([]edge.SeqRange{merged}, a.r[j:]...)...)
	return added
}

// NextMissing returns the smallest s >= from not in the set.
func (a *ackSet) NextMissing(from uint64) uint64 {
	i := a.find(from)
	if i < len(a.r) && a.r[i].First <= from {
		return a.r[i].Last + 1
	}
	return from
}

// CountIn returns how many seqs of [first, last] are in the set.
func (a *ackSet) CountIn(first, last uint64) uint64 {
	var n uint64
	for i := a.find(first); i < len(a.r) && a.r[i].First <= last; i++ {
		n += min(a.r[i].Last, last) - max(a.r[i].First, first) + 1
	}
	return n
}

func (a *ackSet) marshal() []byte {
	b := binary.AppendUvarint(nil, uint64(len(a.r)))
	var prev uint64
	for _, r := range a.r {
		b = binary.AppendUvarint(b, r.First-prev)
		b = binary.AppendUvarint(b, r.Last-r.First)
		prev = r.Last
	}
	return b
}

func (a *ackSet) unmarshal(b []byte) error {
	r := &reader{b: b}
	n := r.count(2)
	a.r = make([]edge.SeqRange, 0, n)
	var prev uint64
	for i := 0; i < n && r.err == nil; i++ {
		f := prev + r.uvarint()
		l := f + r.uvarint()
		if (i > 0 && f <= prev+1) || l < f {
			return fmt.Errorf("%w: ack ranges out of order", ErrCorrupt)
		}
		a.r = append(a.r, edge.SeqRange{First: f, Last: l})
		prev = l
	}
	return r.err
}

// Missing returns the ranges of [first, last] not in the set.
func (a *ackSet) Missing(first, last uint64) []edge.SeqRange {
	var out []edge.SeqRange
	for q := first; q <= last; {
		q = a.NextMissing(q)
		if q > last || q == 0 {
			break
		}
		end := last
		if i := a.find(q); i < len(a.r) && a.r[i].First <= last {
			end = a.r[i].First - 1
		}
		out = append(out, edge.SeqRange{First: q, Last: end})
		if end == last {
			break
		}
		q = end + 1
	}
	return out
}
