package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hazwatch/edgecollector/docs"
)

// Leaves are the topic leaves the worker subscribes to. Data leaves carry a
// seq and are acknowledged; status and meta are retained state.
var (
	dataLeaves  = []string{"rt", "rtd", "event", "stat"}
	stateLeaves = []string{"status", "meta"}
)

// Validator checks messages against the embedded docs/uplink.schema.json.
// It is safe for concurrent use.
type Validator struct {
	schemas map[string]*jsonschema.Schema
}

// NewValidator compiles the schema of every leaf it defines. A leaf the
// schema lacks (rtd before it is added) is validated with the rt envelope,
// which it shares.
func NewValidator() (*Validator, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(docs.UplinkSchema))
	if err != nil {
		return nil, fmt.Errorf("uplink schema: %w", err)
	}
	defs, _ := doc.(map[string]any)["$defs"].(map[string]any)
	c := jsonschema.NewCompiler()
	const url = "file:///uplink.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("uplink schema: %w", err)
	}
	v := &Validator{schemas: map[string]*jsonschema.Schema{}}
	for _, leaf := range append(append([]string{"ack"}, dataLeaves...), stateLeaves...) {
		def := leaf
		if _, ok := defs[def]; !ok && leaf == "rtd" {
			def = "rt"
		}
		s, err := c.Compile(url + "#/$defs/" + def)
		if err != nil {
			return nil, fmt.Errorf("uplink schema: compile %s: %w", def, err)
		}
		v.schemas[leaf] = s
	}
	return v, nil
}

// Validate checks body as a message on .../leaf.
func (v *Validator) Validate(leaf string, body []byte) error {
	_, err := v.validate(leaf, body)
	return err
}

// validate returns the parsed document (numbers as json.Number) once it
// follows the schema.
func (v *Validator) validate(leaf string, body []byte) (any, error) {
	s := v.schemas[leaf]
	if s == nil {
		return nil, fmt.Errorf("no schema for messages on .../%s", leaf)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return inst, s.Validate(inst)
}

// Topic is a parsed {prefix}/{enterprise}/{gateway}/{leaf}.
type Topic struct {
	Enterprise, Gateway, Leaf string
}

// ParseTopic splits a topic under prefix.
func ParseTopic(prefix, topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return Topic{}, fmt.Errorf("topic %q is not under %q", topic, prefix)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Topic{}, fmt.Errorf("topic %q is not %s/{enterprise}/{gateway}/{leaf}", topic, prefix)
	}
	return Topic{parts[0], parts[1], parts[2]}, nil
}

// Message is a data message (rt, rtd, event, stat) ready to store.
type Message struct {
	Enterprise, Gateway string
	Kind                string
	Seq                 int64
	Resend              bool
	SentAt              time.Time
	Created             time.Time // earliest item time; zero when the message is empty
	Body                []byte
	Readings            []Reading
	Events              []Event
	Stats               []Stat
}

// Reading is one row of the readings table.
type Reading struct {
	Point   string
	TS      time.Time
	Value   *float64 // numbers, and bools as 1/0
	Text    *string  // string values
	Unit    string
	Quality string
	Alarm   *string
	Fault   *string
}

// Event is one row of the events table.
type Event struct {
	ID, Type, State string
	Subject         string // point, interlock or subject
	TS              time.Time
	Level           *string
	Ranges          [][2]int64
	Count           *int64
	Message         *string
	Body            json.RawMessage
}

// Stat is one row of the stats table.
type Stat struct {
	Point, Period string
	Start         time.Time
	Unit          string
	Avg, Min, Max *float64
	Count         int64
	Quality       string
}

// State is a status or meta message: gateway state, not buffered, no seq.
type State struct {
	Enterprise, Gateway string
	Leaf                string // status or meta
	Online              *bool  // status
	TS                  time.Time
	Heartbeat           json.RawMessage
	LastSeq             *int64
	Dropped             *int64
	DroppedRanges       json.RawMessage
	Body                []byte
}

type wireState struct {
	Enterprise string `json:"enterprise"`
	Gateway    string `json:"gateway"`
	State      string `json:"state"`
	TS         string `json:"ts"`
	Heartbeat  *struct {
		LastSeq       *int64          `json:"last_seq"`
		Dropped       *int64          `json:"dropped"`
		DroppedRanges json.RawMessage `json:"dropped_ranges"`
	} `json:"heartbeat"`
}

// errInvalid marks a message rejected for what it contains.
var errInvalid = errors.New("invalid message")

func parseTS(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// Decode validates body as a message on topic t and converts it. It returns
// a *Message for data leaves and a *State for status and meta. Every error
// wraps errInvalid.
func (v *Validator) Decode(t Topic, body []byte, received time.Time) (any, error) {
	if !slices.Contains(dataLeaves, t.Leaf) && !slices.Contains(stateLeaves, t.Leaf) {
		return nil, fmt.Errorf("%w: .../%s is not a topic the worker stores", errInvalid, t.Leaf)
	}
	inst, err := v.validate(t.Leaf, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s/%s: %v", errInvalid, t.Enterprise, t.Gateway, t.Leaf, err)
	}
	switch t.Leaf {
	case "status", "meta":
		return decodeState(t, body, received)
	}
	doc, _ := inst.(map[string]any)
	return decodeData(t, body, doc)
}

func sameGateway(t Topic, ent, gw string) error {
	if ent != t.Enterprise || gw != t.Gateway {
		return fmt.Errorf("%w: topic names %s/%s but the message %s/%s", errInvalid, t.Enterprise, t.Gateway, ent, gw)
	}
	return nil
}

// decodeData converts a validated data message from the parsed document, so
// the body is parsed once. The schema has checked the types; every
// assertion is still checked, so a schema that drifts rejects instead of
// panicking.
func decodeData(t Topic, body []byte, doc map[string]any) (*Message, error) {
	d := &fields{}
	m := &Message{Enterprise: d.str(doc, "enterprise"), Gateway: d.str(doc, "gateway"), Kind: t.Leaf, Body: body}
	if err := sameGateway(t, m.Enterprise, m.Gateway); err != nil {
		return nil, err
	}
	m.Seq = d.int(doc["seq"], "seq")
	m.Resend, _ = doc["resend"].(bool)
	m.SentAt = d.ts(doc, "sent_at")
	earliest := func(ts time.Time) {
		if m.Created.IsZero() || ts.Before(m.Created) {
			m.Created = ts
		}
	}
	readings, _ := doc["readings"].([]any)
	m.Readings = make([]Reading, 0, len(readings))
	for _, x := range readings {
		r := d.obj(x, "reading")
		rd := Reading{Point: d.str(r, "point"), TS: d.ts(r, "ts"), Unit: d.str(r, "unit"), Quality: d.str(r, "quality"),
			Alarm: d.optStr(r, "alarm"), Fault: d.optStr(r, "fault")}
		switch v := r["value"].(type) {
		case nil:
		case bool:
			f := 0.0
			if v {
				f = 1
			}
			rd.Value = &f
		case string:
			rd.Text = &v
		default:
			rd.Value = d.float(v, "reading "+rd.Point+" value")
		}
		earliest(rd.TS)
		m.Readings = append(m.Readings, rd)
	}
	events, _ := doc["events"].([]any)
	for _, x := range events {
		e := d.obj(x, "event")
		ev := Event{ID: d.str(e, "id"), Type: d.str(e, "type"), State: d.str(e, "state"), TS: d.ts(e, "ts"),
			Level: d.optStr(e, "level"), Message: d.optStr(e, "message")}
		for _, k := range []string{"point", "interlock", "subject"} {
			if ev.Subject = d.str(e, k); ev.Subject != "" {
				break
			}
		}
		if rs, ok := e["ranges"].([]any); ok {
			ev.Ranges = make([][2]int64, 0, len(rs))
			for _, r := range rs {
				pair, _ := r.([]any)
				if len(pair) != 2 {
					d.fail("event %s: a range is not [first, last]", ev.ID)
					continue
				}
				ev.Ranges = append(ev.Ranges, [2]int64{d.int(pair[0], "range"), d.int(pair[1], "range")})
			}
		}
		if c, ok := e["count"]; ok && c != nil {
			n := d.int(c, "count")
			ev.Count = &n
		}
		raw, err := json.Marshal(e)
		if err != nil {
			d.fail("event %s: %v", ev.ID, err)
		}
		ev.Body = raw
		earliest(ev.TS)
		m.Events = append(m.Events, ev)
	}
	stats, _ := doc["stats"].([]any)
	for _, x := range stats {
		st := d.obj(x, "stat")
		s := Stat{Point: d.str(st, "point"), Period: d.str(st, "period"), Start: d.ts(st, "start"), Unit: d.str(st, "unit"),
			Avg: d.optFloat(st, "avg"), Min: d.optFloat(st, "min"), Max: d.optFloat(st, "max"),
			Count: d.int(st["count"], "count"), Quality: d.str(st, "quality")}
		earliest(s.Start)
		m.Stats = append(m.Stats, s)
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %s/%s seq %d: %v", errInvalid, m.Enterprise, m.Gateway, m.Seq, d.err)
	}
	return m, nil
}

// fields reads fields of a parsed document, keeping the first problem.
type fields struct{ err error }

func (d *fields) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *fields) obj(x any, what string) map[string]any {
	o, ok := x.(map[string]any)
	if !ok {
		d.fail("%s is not an object", what)
	}
	return o
}

func (d *fields) str(o map[string]any, k string) string {
	s, _ := o[k].(string)
	return s
}

func (d *fields) optStr(o map[string]any, k string) *string {
	if s, ok := o[k].(string); ok {
		return &s
	}
	return nil
}

func (d *fields) ts(o map[string]any, k string) time.Time {
	t, err := parseTS(d.str(o, k))
	if err != nil {
		d.fail("%s: %v", k, err)
	}
	return t
}

func (d *fields) float(x any, what string) *float64 {
	n, ok := x.(json.Number)
	if !ok {
		d.fail("%s: not a number", what)
		return nil
	}
	f, err := n.Float64()
	if err != nil {
		d.fail("%s: %v", what, err)
		return nil
	}
	return &f
}

func (d *fields) optFloat(o map[string]any, k string) *float64 {
	if o[k] == nil {
		return nil
	}
	return d.float(o[k], k)
}

func (d *fields) int(x any, what string) int64 {
	n, ok := x.(json.Number)
	if !ok {
		d.fail("%s: not a number", what)
		return 0
	}
	i, err := n.Int64()
	if err != nil {
		d.fail("%s: %v", what, err)
	}
	return i
}

func decodeState(t Topic, body []byte, received time.Time) (*State, error) {
	var w wireState
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: %s/%s/%s: %v", errInvalid, t.Enterprise, t.Gateway, t.Leaf, err)
	}
	if err := sameGateway(t, w.Enterprise, w.Gateway); err != nil {
		return nil, err
	}
	s := &State{Enterprise: w.Enterprise, Gateway: w.Gateway, Leaf: t.Leaf, Body: body, TS: received}
	if t.Leaf == "status" {
		online := w.State == "online"
		s.Online = &online
		if w.Heartbeat != nil {
			hb, _ := json.Marshal(w.Heartbeat)
			// Keep the whole heartbeat as sent, not our subset.
			var full struct {
				Heartbeat json.RawMessage `json:"heartbeat"`
			}
			if json.Unmarshal(body, &full) == nil {
				hb = full.Heartbeat
			}
			s.Heartbeat = hb
			s.LastSeq, s.Dropped, s.DroppedRanges = w.Heartbeat.LastSeq, w.Heartbeat.Dropped, w.Heartbeat.DroppedRanges
		}
	}
	return s, nil
}
