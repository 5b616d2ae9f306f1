package edge

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Quality says how far a reading can be trusted. The names are the ones the
// uplink formats carry (see docs/uplink-format.md).
type Quality uint8

// Qualities, in the order of the design's list.
const (
	Good Quality = iota
	CommFault
	Exception
	SensorFault
	OverRange
	UnderRange
	Stale
	Maintenance
	numQualities
)

var qualityNames = [...]string{"good", "comm_fault", "exception", "sensor_fault", "over_range", "under_range", "stale", "maintenance"}

func (q Quality) String() string {
	if q < numQualities {
		return qualityNames[q]
	}
	return "quality(" + strconv.Itoa(int(q)) + ")"
}

// Valid reports whether q is one of the defined qualities.
func (q Quality) Valid() bool { return q < numQualities }

// HasValue reports whether a reading of this quality carries its value. The
// value is null exactly for comm_fault, exception, sensor_fault and stale.
func (q Quality) HasValue() bool {
	switch q {
	case CommFault, Exception, SensorFault, Stale:
		return false
	}
	return true
}

// Faulted reports whether a detector of this quality counts as faulted for
// interlock voting.
func (q Quality) Faulted() bool {
	switch q {
	case CommFault, Exception, SensorFault, Stale, UnderRange, Maintenance:
		return true
	}
	return false
}

// ParseQuality is the inverse of Quality.String.
func ParseQuality(s string) (Quality, bool) {
	for i, n := range qualityNames {
		if n == s {
			return Quality(i), true
		}
	}
	return 0, false
}

// Level is an alarm level of a point.
type Level uint8

// Alarm levels. NoLevel means no process alarm is active.
const (
	NoLevel Level = iota
	LL
	L
	H
	HH
	numLevels
)

var levelNames = [...]string{"", "LL", "L", "H", "HH"}

func (l Level) String() string {
	if l < numLevels {
		return levelNames[l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// ParseLevel is the inverse of Level.String; "" gives NoLevel.
func ParseLevel(s string) (Level, bool) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), true
		}
	}
	return 0, false
}

// ValueKind says which field of a Value holds it.
type ValueKind uint8

// Value kinds.
const (
	Null ValueKind = iota
	Number
	Bool
	String
)

// Value is a reading's value: a number, a bool, a string, or null.
type Value struct {
	Kind ValueKind
	Num  float64
	Bool bool
	Str  string
}

// Num returns a number value.
func Num(f float64) Value { return Value{Kind: Number, Num: f} }

// BoolValue returns a bool value.
func BoolValue(b bool) Value { return Value{Kind: Bool, Bool: b} }

// Str returns a string value.
func Str(s string) Value { return Value{Kind: String, Str: s} }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind == Null }

// Float returns v as a number: bools are 0 or 1; strings and null are NaN.
func (v Value) Float() float64 {
	switch v.Kind {
	case Number:
		return v.Num
	case Bool:
		if v.Bool {
			return 1
		}
		return 0
	}
	return math.NaN()
}

func (v Value) String() string {
	switch v.Kind {
	case Number:
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	case Bool:
		return strconv.FormatBool(v.Bool)
	case String:
		return strconv.Quote(v.Str)
	}
	return "null"
}

// Reading is one point's value at one poll.
type Reading struct {
	Point   string
	TS      time.Time
	Value   Value
	Unit    string
	Quality Quality
	Alarm   Level
	// Fault says why the reading is not good: the instrument's diagnostic
	// condition or the driver's error ("" when good).
	Fault string
}

// EventType is the kind of an event.
type EventType uint8

// Event types.
const (
	EventAlarm EventType = iota + 1
	EventFault
	EventInterlock
	EventSystem
	EventMaintenance
)

var eventTypeNames = [...]string{"", "alarm", "fault", "interlock", "system", "maintenance"}

func (t EventType) String() string {
	if int(t) < len(eventTypeNames) && t != 0 {
		return eventTypeNames[t]
	}
	return "event(" + strconv.Itoa(int(t)) + ")"
}

// ParseEventType is the inverse of EventType.String.
func ParseEventType(s string) (EventType, bool) {
	for i, n := range eventTypeNames {
		if i > 0 && n == s {
			return EventType(i), true
		}
	}
	return 0, false
}

// Event states, by type (see DESIGN.md).
const (
	StateRaised         = "raised"
	StateCleared        = "cleared"
	StateAcked          = "acked"
	StateTripped        = "tripped"
	StateActionDone     = "action_done"
	StateActionFailed   = "action_failed"
	StateActionVerified = "action_verified"
	StateActionMismatch = "action_mismatch"
	StateReset          = "reset"
	StateBypassed       = "bypassed"
	StateBypassExpired  = "bypass_expired"

	StateStarted = "started" // maintenance
	StateEnded   = "ended"
	StateExpired = "expired"

	StateConfigLoaded    = "config_loaded"
	StateConfigRejected  = "config_rejected"
	StateBufferDropped   = "buffer_dropped"
	StateBufferRecreated = "buffer_recreated"
	StateClockStep       = "clock_step"
	StateAuditNearFull   = "audit_near_full" // the audit store nears its cap: its oldest files will be pruned
)

// ValidStates lists the states each event type may carry.
var ValidStates = map[EventType][]string{
	EventAlarm:       {StateRaised, StateCleared, StateAcked},
	EventFault:       {StateRaised, StateCleared},
	EventInterlock:   {StateTripped, StateActionDone, StateActionFailed, StateActionVerified, StateActionMismatch, StateReset, StateBypassed, StateBypassExpired},
	EventSystem:      {StateConfigLoaded, StateConfigRejected, StateBufferDropped, StateBufferRecreated, StateClockStep, StateAuditNearFull},
	EventMaintenance: {StateStarted, StateEnded, StateExpired},
}

// Action is one output write of an interlock and its proof.
type Action struct {
	Device   string
	Table    string // "coil" or "holding"
	Address  uint16
	Write    Value
	ReadBack Value // null when not read back (yet)
	Error    string
}

// SeqRange is an inclusive range of sequence numbers.
type SeqRange struct{ First, Last uint64 }

func (r SeqRange) String() string {
	if r.First == r.Last {
		return strconv.FormatUint(r.First, 10)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Count is the number of seqs in r.
func (r SeqRange) Count() uint64 { return r.Last - r.First + 1 }

// Event is an alarm, fault, interlock or system event.
type Event struct {
	// ID is unique per gateway. When empty, formats derive it with EventID
	// from the message's seq and the event's index.
	ID        string
	Type      EventType
	State     string
	Point     string // alarm and fault events
	Interlock string // interlock events
	Subject   string // system events
	TS        time.Time
	Level     string // alarm: LL/L/H/HH; fault: comm, range, loop, stuck
	Value     Value
	Threshold Value
	Unit      string
	Actions   []Action
	Ranges    []SeqRange // buffer_dropped: dropped; buffer_recreated: not issued
	Count     uint64     // buffer_dropped: messages dropped in Ranges
	Message   string     // a sentence for people
	Reason    string     // maintenance: why out of service; buffer_dropped: cap, age, queue, memory, corrupt
	By        string     // maintenance: who took it out or put it back
}

// EventID is the id of the n-th event (0-based) of the message with this seq.
func EventID(gateway string, seq uint64, n int) string {
	return gateway + "-" + strconv.FormatUint(seq, 10) + "-" + strconv.Itoa(n)
}

// Kind is the kind of a buffered message.
type Kind uint8

// Message kinds.
const (
	KindRT Kind = iota + 1
	KindEvent
	KindStat
	// KindRTD is the HJ 212 real-time snapshot: at each rtd_interval
	// boundary, the latest value, quality and time of every factor point.
	KindRTD
)

var kindNames = [...]string{"", "rt", "event", "stat", "rtd"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Period is the span of a statistics record.
type Period uint8

// Statistic periods (HJ 212 CN 2051 and 2061).
const (
	Minute Period = iota + 1
	Hour
)

func (p Period) String() string {
	switch p {
	case Minute:
		return "minute"
	case Hour:
		return "hour"
	}
	return "period(" + strconv.Itoa(int(p)) + ")"
}

// Stat is one point's statistics over one minute or hour, computed from every
// poll.
type Stat struct {
	Point         string
	Period        Period
	Start         time.Time
	Unit          string
	Avg, Min, Max float64
	Count         uint32  // polls with a value
	Quality       Quality // worst quality seen in the period
	minutes       int     // a minute period's length, while pending
}

// Message is the unit of buffering: a group tick's readings (rt), events, or
// statistics. Seq is assigned by the buffer at append.
type Message struct {
	Seq      uint64
	Kind     Kind
	Created  time.Time
	Readings []Reading
	Events   []Event
	Stats    []Stat
}

// Len is the number of records the message carries.
func (m *Message) Len() int { return len(m.Readings) + len(m.Events) + len(m.Stats) }

// Important reports whether the message is kept longest when the buffer must
// drop: alarm, fault, interlock and system events.
func (m *Message) Important() bool { return m.Kind == KindEvent }
