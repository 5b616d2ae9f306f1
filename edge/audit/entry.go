package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"time"
)

// Entry is one line of the log (format 2). Its fields are the ones
// IEC 62443-4-2 CR 2.8 asks of an audit record: time (TS), source (the
// user, uid, "platform", "SIGHUP" or "collector"), category, type, an
// event id and the result; N, Prev and Hash make the chain.
type Entry struct {
	V        int    `json:"v"` // 2
	N        uint64 `json:"n"`
	TS       string `json:"ts"`
	ID       string `json:"id"`
	Source   string `json:"source"`
	Category string `json:"category"` // config, alarm, fault, interlock, system, control, maintenance, audit
	Type     string `json:"type"`     // loaded, raised, reset, bypass, rotated, pruned, ...
	Subject  string `json:"subject,omitempty"`
	Result   string `json:"result"` // ok, requested, refused: ..., failed: ...
	Detail   string `json:"detail,omitempty"`
	Prev     string `json:"prev"`
	Hash     string `json:"hash"`
}

// entryV1 is the first format (no "v"): still verified, never written.
type entryV1 struct {
	N       uint64 `json:"n"`
	TS      string `json:"ts"`
	Kind    string `json:"kind"`
	Action  string `json:"action"`
	Subject string `json:"subject"`
	Who     string `json:"who,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Prev    string `json:"prev"`
	Hash    string `json:"hash"`
}

// lineFields is every field either format may carry, for decoding a line
// with unknown fields refused.
type lineFields struct {
	V        int    `json:"v"`
	N        uint64 `json:"n"`
	TS       string `json:"ts"`
	Kind     string `json:"kind"`
	Action   string `json:"action"`
	Who      string `json:"who"`
	ID       string `json:"id"`
	Source   string `json:"source"`
	Category string `json:"category"`
	Type     string `json:"type"`
	Subject  string `json:"subject"`
	Result   string `json:"result"`
	Detail   string `json:"detail"`
	Prev     string `json:"prev"`
	Hash     string `json:"hash"`
}

// genesis is the prev of the first entry.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// sumJSON is an entry's hash: over prev and the entry's JSON with an
// empty hash (both formats).
func sumJSON(h hash.Hash, prev string, withoutHash any) string {
	b, _ := json.Marshal(withoutHash)
	h.Write([]byte(prev))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (e Entry) sum(h hash.Hash) string {
	e.Hash = ""
	return sumJSON(h, e.Prev, e)
}

func (e entryV1) sum(h hash.Hash) string {
	e.Hash = ""
	return sumJSON(h, e.Prev, e)
}

// parsed is what the chain checks need of a line of either format.
type parsed struct {
	n                      uint64
	ts                     string
	category, typ, detail  string
	prev, hash, recomputed string
}

func (p parsed) time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, p.ts)
	return t
}

// parseLine decodes one line (with its newline) and recomputes its hash.
// A line that is not exactly as the collector writes it (an unknown
// field, another order, other spacing) is an edit too.
func parseLine(b []byte, mac func() hash.Hash) (parsed, error) {
	var f lineFields
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return parsed{}, fmt.Errorf("not an audit entry: %v", err)
	}
	var canon []byte
	p := parsed{n: f.N, ts: f.TS, prev: f.Prev, hash: f.Hash, detail: f.Detail}
	switch f.V {
	case 0:
		e := entryV1{N: f.N, TS: f.TS, Kind: f.Kind, Action: f.Action, Subject: f.Subject, Who: f.Who, Detail: f.Detail, Prev: f.Prev, Hash: f.Hash}
		canon, _ = json.Marshal(e)
		p.category, p.typ, p.recomputed = f.Kind, f.Action, e.sum(mac())
	case 2:
		e := Entry{V: 2, N: f.N, TS: f.TS, ID: f.ID, Source: f.Source, Category: f.Category, Type: f.Type, Subject: f.Subject, Result: f.Result,
			Detail: f.Detail, Prev: f.Prev, Hash: f.Hash}
		canon, _ = json.Marshal(e)
		p.category, p.typ, p.recomputed = f.Category, f.Type, e.sum(mac())
	default:
		return parsed{}, fmt.Errorf("entry %d: unknown format version %d", f.N, f.V)
	}
	if !bytes.Equal(append(canon, '\n'), b) {
		return parsed{}, fmt.Errorf("entry %d: not as the collector writes it (a field added, moved or re-spaced): the entry was edited", f.N)
	}
	return p, nil
}
