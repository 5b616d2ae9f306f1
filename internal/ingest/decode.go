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
	s := v.schemas[leaf]
	if s == nil {
		return fmt.Errorf("no schema for messages on .../%s", leaf)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(inst)
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

type wireMessage struct {
	Enterprise string `json:"enterprise"`
	Gateway    string `json:"gateway"`
	Seq        int64  `json:"seq"`
	Resend     bool   `json:"resend"`
	SentAt     string `json:"sent_at"`
	Readings   []struct {
		Point   string          `json:"point"`
		TS      string          `json:"ts"`
		Value   json.RawMessage `json:"value"`
		Unit    string          `json:"unit"`
		Quality string          `json:"quality"`
		Alarm   *string         `json:"alarm"`
		Fault   *string         `json:"fault"`
	} `json:"readings"`
	Events []json.RawMessage `json:"events"`
	Stats  []struct {
		Point   string   `json:"point"`
		Period  string   `json:"period"`
		Start   string   `json:"start"`
		Unit    string   `json:"unit"`
		Avg     *float64 `json:"avg"`
		Min     *float64 `json:"min"`
		Max     *float64 `json:"max"`
		Count   int64    `json:"count"`
		Quality string   `json:"quality"`
	} `json:"stats"`
}

type wireEvent struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	State     string     `json:"state"`
	Point     string     `json:"point"`
	Interlock string     `json:"interlock"`
	Subject   string     `json:"subject"`
	TS        string     `json:"ts"`
	Level     *string    `json:"level"`
	Ranges    [][2]int64 `json:"ranges"`
	Count     *int64     `json:"count"`
	Message   *string    `json:"message"`
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
	if err := v.Validate(t.Leaf, body); err != nil {
		return nil, fmt.Errorf("%w: %s/%s/%s: %v", errInvalid, t.Enterprise, t.Gateway, t.Leaf, err)
	}
	switch t.Leaf {
	case "status", "meta":
		return decodeState(t, body, received)
	}
	return decodeData(t, body)
}

func sameGateway(t Topic, ent, gw string) error {
	if ent != t.Enterprise || gw != t.Gateway {
		return fmt.Errorf("%w: topic names %s/%s but the message %s/%s", errInvalid, t.Enterprise, t.Gateway, ent, gw)
	}
	return nil
}

func decodeData(t Topic, body []byte) (*Message, error) {
	var w wireMessage
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: %s/%s/%s: %v", errInvalid, t.Enterprise, t.Gateway, t.Leaf, err)
	}
	if err := sameGateway(t, w.Enterprise, w.Gateway); err != nil {
		return nil, err
	}
	m := &Message{Enterprise: w.Enterprise, Gateway: w.Gateway, Kind: t.Leaf, Seq: w.Seq, Resend: w.Resend, Body: body}
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: %s/%s seq %d: %s: %v", errInvalid, w.Enterprise, w.Gateway, w.Seq, what, err)
	}
	var err error
	if m.SentAt, err = parseTS(w.SentAt); err != nil {
		return nil, bad("sent_at", err)
	}
	earliest := func(ts time.Time) {
		if m.Created.IsZero() || ts.Before(m.Created) {
			m.Created = ts
		}
	}
	m.Readings = make([]Reading, 0, len(w.Readings))
	for _, r := range w.Readings {
		ts, err := parseTS(r.TS)
		if err != nil {
			return nil, bad("reading "+r.Point+" ts", err)
		}
		earliest(ts)
		rd := Reading{Point: r.Point, TS: ts, Unit: r.Unit, Quality: r.Quality, Alarm: r.Alarm, Fault: r.Fault}
		if err := readingValue(&rd, r.Value); err != nil {
			return nil, bad("reading "+r.Point+" value", err)
		}
		m.Readings = append(m.Readings, rd)
	}
	for i, raw := range w.Events {
		var e wireEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, bad(fmt.Sprintf("event %d", i), err)
		}
		ts, err := parseTS(e.TS)
		if err != nil {
			return nil, bad("event "+e.ID+" ts", err)
		}
		earliest(ts)
		subject := e.Point
		if subject == "" {
			subject = e.Interlock
		}
		if subject == "" {
			subject = e.Subject
		}
		m.Events = append(m.Events, Event{ID: e.ID, Type: e.Type, State: e.State, Subject: subject, TS: ts,
			Level: e.Level, Ranges: e.Ranges, Count: e.Count, Message: e.Message, Body: raw})
	}
	for _, s := range w.Stats {
		start, err := parseTS(s.Start)
		if err != nil {
			return nil, bad("stat "+s.Point+" start", err)
		}
		earliest(start)
		m.Stats = append(m.Stats, Stat{Point: s.Point, Period: s.Period, Start: start, Unit: s.Unit,
			Avg: s.Avg, Min: s.Min, Max: s.Max, Count: s.Count, Quality: s.Quality})
	}
	return m, nil
}

// readingValue sorts a JSON value into the numeric or text column.
func readingValue(r *Reading, raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case string(raw) == "true" || string(raw) == "false":
		f := 0.0
		if raw[0] == 't' {
			f = 1
		}
		r.Value = &f
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		r.Text = &s
	default:
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return err
		}
		r.Value = &f
	}
	return nil
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
