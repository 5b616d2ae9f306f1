package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Range is an inclusive seq range.
type Range struct{ First, Last int64 }

// Count is the seqs in r.
func (r Range) Count() int64 { return r.Last - r.First + 1 }

func (r Range) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// GatewayGaps is one gateway's account of its seqs 1..Last.
type GatewayGaps struct {
	Enterprise, Gateway string
	Last                int64   // highest seq stored
	Stored              int64   // messages stored
	Missing             []Range // not stored and named by no loss event: the gaps
	Named               []Range // not stored, named by buffer_dropped/buffer_recreated
	Reported            *int64  // the gateway's last_seq in its latest heartbeat
}

// Gaps accounts, per gateway, for every seq from 1 to the highest stored:
// each is stored, or named in the ranges of a buffer_dropped or
// buffer_recreated event, or it is a gap.
func Gaps(ctx context.Context, pool *pgxpool.Pool) ([]GatewayGaps, error) {
	var out []GatewayGaps
	idx := map[gwKey]int{}
	rows, err := pool.Query(ctx, `SELECT m.enterprise, m.gateway, max(m.seq), count(*), max(g.reported_last_seq)
		FROM messages m LEFT JOIN gateways g USING (enterprise, gateway)
		GROUP BY m.enterprise, m.gateway ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("gaps: %w", err)
	}
	for rows.Next() {
		var g GatewayGaps
		if err := rows.Scan(&g.Enterprise, &g.Gateway, &g.Last, &g.Stored, &g.Reported); err != nil {
			rows.Close()
			return nil, fmt.Errorf("gaps: %w", err)
		}
		idx[gwKey{g.Enterprise, g.Gateway}] = len(out)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("gaps: %w", err)
	}

	holes := map[gwKey][]Range{}
	rows, err = pool.Query(ctx, `SELECT enterprise, gateway, prev + 1, seq - 1 FROM (
			SELECT enterprise, gateway, seq, coalesce(lag(seq) OVER (PARTITION BY enterprise, gateway ORDER BY seq), 0) AS prev
			FROM messages) s
		WHERE seq > prev + 1 ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("gaps: %w", err)
	}
	for rows.Next() {
		var k gwKey
		var r Range
		if err := rows.Scan(&k.Enterprise, &k.Gateway, &r.First, &r.Last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("gaps: %w", err)
		}
		holes[k] = append(holes[k], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("gaps: %w", err)
	}

	named := map[gwKey][]Range{}
	rows, err = pool.Query(ctx, `SELECT enterprise, gateway, ranges FROM events
		WHERE state IN ('buffer_dropped', 'buffer_recreated') AND ranges IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("gaps: %w", err)
	}
	for rows.Next() {
		var k gwKey
		var raw []byte
		if err := rows.Scan(&k.Enterprise, &k.Gateway, &raw); err != nil {
			rows.Close()
			return nil, fmt.Errorf("gaps: %w", err)
		}
		var rs [][2]int64
		if json.Unmarshal(raw, &rs) != nil {
			continue
		}
		for _, r := range rs {
			if r[0] <= r[1] {
				named[k] = append(named[k], Range{r[0], r[1]})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("gaps: %w", err)
	}
	for k, hs := range holes {
		g := &out[idx[k]]
		g.Missing, g.Named = subtract(hs, named[k])
	}
	return out, nil
}

// subtract splits holes into the parts no named range covers and the parts
// one does.
func subtract(holes, named []Range) (missing, covered []Range) {
	named = merge(named)
	for _, h := range holes {
		at := h.First
		for _, n := range named {
			if n.Last < at || n.First > h.Last {
				continue
			}
			if n.First > at {
				missing = append(missing, Range{at, n.First - 1})
			}
			covered = append(covered, Range{max(at, n.First), min(h.Last, n.Last)})
			at = n.Last + 1
			if at > h.Last {
				break
			}
		}
		if at <= h.Last {
			missing = append(missing, Range{at, h.Last})
		}
	}
	return missing, covered
}

// merge sorts ranges and joins the overlapping and adjacent ones.
func merge(rs []Range) []Range {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.First, b.First) })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && r.First <= out[n-1].Last+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// PrintGaps writes the report and returns the number of gaps.
func PrintGaps(w io.Writer, gs []GatewayGaps) int {
	total, gateways := 0, 0
	for _, g := range gs {
		var missing int64
		for _, r := range g.Missing {
			missing += r.Count()
		}
		fmt.Fprintf(w, "%s/%s: seqs 1-%d, %d stored, %d named lost or not issued, %d missing", g.Enterprise, g.Gateway, g.Last, g.Stored, countOf(g.Named), missing)
		if g.Reported != nil && *g.Reported > g.Last {
			fmt.Fprintf(w, " (its last heartbeat reported seq %d: newer seqs may still be on their way)", *g.Reported)
		}
		fmt.Fprintln(w)
		for _, r := range g.Named {
			fmt.Fprintf(w, "  named   %s (%d)\n", r, r.Count())
		}
		for _, r := range g.Missing {
			fmt.Fprintf(w, "  MISSING %s (%d) named by no buffer_dropped or buffer_recreated event\n", r, r.Count())
		}
		total += len(g.Missing)
		if len(g.Missing) > 0 {
			gateways++
		}
	}
	if total == 0 {
		fmt.Fprintf(w, "no gaps: %d gateways, every seq stored or named by a loss event\n", len(gs))
	} else {
		fmt.Fprintf(w, "%d gaps in %d of %d gateways\n", total, gateways, len(gs))
	}
	return total
}

func countOf(rs []Range) int64 {
	var n int64
	for _, r := range rs {
		n += r.Count()
	}
	return n
}
