package jsonfmt

import (
	"encoding/json"
	"time"
)

// Status is the retained message on .../status: "online" on connect (with
// the heartbeat fields), "offline" as the Last Will. It carries no seq and
// is not buffered.
type Status struct {
	V          int    `json:"v"`
	Enterprise string `json:"enterprise"`
	Gateway    string `json:"gateway"`
	State      string `json:"state"`
	// Heartbeat fields; absent from the Last Will.
	TS        string     `json:"ts,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
}

// Heartbeat describes the gateway's buffer and uplink.
type Heartbeat struct {
	UptimeS       int64       `json:"uptime_s"`
	LastSeq       uint64      `json:"last_seq"`
	Backlog       uint64      `json:"backlog"`       // messages this uplink has not had acknowledged
	OldestUnsent  *string     `json:"oldest_unsent"` // creation time of the oldest, null when none
	Dropped       uint64      `json:"dropped"`       // messages dropped since the buffer was created
	DroppedRanges [][2]uint64 `json:"dropped_ranges"`
	Durable       bool        `json:"durable"`
	Degraded      string      `json:"degraded,omitempty"`
	RetentionFrom *string     `json:"retention_from"` // oldest stored message: the effective retention
	BufferBytes   int64       `json:"buffer_bytes"`
	Tripped       []string    `json:"tripped"`    // interlocks latched
	Bypassed      []string    `json:"bypassed"`   // interlocks in bypass
	AuditHead     string      `json:"audit_head"` // hash of the audit log's last entry
	// Interlocks: each interlock and the state of each of its outputs.
	Interlocks []HeartbeatInterlock `json:"interlocks,omitempty"`
	// ConfigSHA256 is the hex SHA-256 of the running config file.
	ConfigSHA256 string `json:"config_sha256"`
}

// HeartbeatInterlock is one interlock in the heartbeat.
type HeartbeatInterlock struct {
	Name     string            `json:"name"`
	Tripped  bool              `json:"tripped"`
	Bypassed bool              `json:"bypassed"`
	Cause    string            `json:"cause,omitempty"`
	Actions  []HeartbeatAction `json:"actions"`
}

// HeartbeatAction is one interlock output's supervision state.
type HeartbeatAction struct {
	Device   string   `json:"device"`
	Table    string   `json:"table"`
	Address  uint16   `json:"address"`
	Write    float64  `json:"write"`
	State    string   `json:"state"`
	Error    string   `json:"error,omitempty"`
	Since    *string  `json:"since,omitempty"`
	ReadBack *float64 `json:"read_back,omitempty"`
	Feedback string   `json:"feedback,omitempty"`
}

// Offline is the Last Will's body.
func (e *Encoder) Offline() []byte {
	b, _ := json.Marshal(Status{V: Version, Enterprise: e.Enterprise, Gateway: e.Gateway, State: "offline"})
	return b
}

// Online is the status body with a heartbeat.
func (e *Encoder) Online(now time.Time, hb Heartbeat) []byte {
	if hb.DroppedRanges == nil {
		hb.DroppedRanges = [][2]uint64{}
	}
	if hb.Tripped == nil {
		hb.Tripped = []string{}
	}
	if hb.Bypassed == nil {
		hb.Bypassed = []string{}
	}
	b, _ := json.Marshal(Status{V: Version, Enterprise: e.Enterprise, Gateway: e.Gateway, State: "online",
		TS: now.In(e.Location).Format(TimeLayout), Heartbeat: &hb})
	return b
}

// TimePtr formats t for an optional time field (nil for the zero time).
func (e *Encoder) TimePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.In(e.Location).Format(TimeLayout)
	return &s
}

// MetaPoint is one entry of the point catalogue on .../meta.
type MetaPoint struct {
	Point      string              `json:"point"`
	Name       string              `json:"name"`
	Kind       string              `json:"kind"`
	Unit       string              `json:"unit"`
	Range      *[2]float64         `json:"range"`
	Thresholds map[string]*float64 `json:"thresholds"`
	Factor     string              `json:"hj212_factor,omitempty"`
	// InService is false while the point is out of service (maintenance),
	// with why, who and until when (Jiangsu's IS_USE, STOP_REMARK,
	// STOP_PSN, STOP_TIME).
	InService    bool          `json:"in_service"`
	OutOfService *OutOfService `json:"out_of_service,omitempty"`
}

// OutOfService is why and until when a point is in maintenance.
type OutOfService struct {
	Reason string  `json:"reason"`
	By     string  `json:"by"`
	Since  *string `json:"since"`
	Until  *string `json:"until"`
}

// Meta is the retained point catalogue (the provincial sensor table:
// tag, range, LL/L/H/HH).
func (e *Encoder) Meta(now time.Time, points []MetaPoint) []byte {
	b, _ := json.Marshal(struct {
		V          int         `json:"v"`
		Enterprise string      `json:"enterprise"`
		Gateway    string      `json:"gateway"`
		TS         string      `json:"ts"`
		Points     []MetaPoint `json:"points"`
	}{Version, e.Enterprise, e.Gateway, now.In(e.Location).Format(TimeLayout), points})
	return b
}

// Ack is what the platform publishes on .../ack in platform-ack mode.
type Ack struct {
	Seqs []uint64 `json:"seqs"`
}

// ParseAck decodes a platform acknowledgement.
func ParseAck(b []byte) (Ack, error) {
	var a Ack
	err := json.Unmarshal(b, &a)
	return a, err
}
