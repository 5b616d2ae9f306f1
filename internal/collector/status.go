package collector

import (
	"sort"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
)

// Status is the collector's state: /status and `edgecollector status`
// serve it as JSON, the heartbeat and /metrics are rendered from it.
//
// It is an interface (DESIGN.md): the keys in
// internal/collector/testdata/status_keys.golden keep their names and
// types; keys may be added, never renamed.
type Status struct {
	Enterprise string `json:"enterprise"`
	Gateway    string `json:"gateway"`
	UptimeS    int64  `json:"uptime_s"`
	// ConfigSHA256 is the hex SHA-256 of the config file's bytes.
	ConfigSHA256 string                  `json:"config_sha256"`
	Buffer       BufferStatus            `json:"buffer"`
	Uplinks      map[string]UplinkStatus `json:"uplinks"`
	Interlocks   []edge.InterlockStatus  `json:"interlocks"`
	Points       []PointStatus           `json:"points"`
	Groups       []GroupStatus           `json:"groups"`
	Devices      []DeviceStatus          `json:"devices"`
	Listeners    []ListenerStatus        `json:"listeners"`
	Services     []ServiceStatus         `json:"services"`
	AuditHead    string                  `json:"audit_head"`
	// Audit is the audit store against its cap (audit_near_full).
	Audit AuditStatus `json:"audit"`
	// GatewayName is gateway.name; Time is when the status was taken, in
	// the configured UTC offset (UTCOffset), like every time in it.
	GatewayName string `json:"gateway_name"`
	Time        string `json:"time"`
	UTCOffset   string `json:"utc_offset"`
	// Events are the last RecentEvents events appended, newest first.
	Events []EventStatus `json:"events"`
	// InterlockInfo is each interlock's description from the config, by name.
	InterlockInfo map[string]string `json:"interlock_info"`

	// taken is when the status was taken (heartbeat bypass expiry); enc
	// formats its times.
	taken time.Time
	loc   *jsonfmt.Encoder
}

// timePtr formats t as the uplinks do (nil when zero).
func timePtr(enc *jsonfmt.Encoder, t time.Time) *string {
	if enc == nil {
		return nil
	}
	return enc.TimePtr(t)
}

// BufferStatus is the buffer and the appender queue in front of it.
type BufferStatus struct {
	Durable       bool            `json:"durable"`
	Degraded      string          `json:"degraded"`
	Messages      uint64          `json:"messages"`
	Bytes         int64           `json:"bytes"`
	LastSeq       uint64          `json:"last_seq"`
	Dropped       uint64          `json:"dropped"` // total, since the buffer was created
	DroppedRanges []edge.SeqRange `json:"dropped_ranges"`
	MemoryQueued  int             `json:"memory_queued"`
	Oldest        *string         `json:"oldest"` // creation time of the oldest stored message
	Queue         int             `json:"queue"`  // messages waiting in the appender queue
	// RetentionS is the configured retention age; Oldest is the effective
	// retention (caps may have evicted earlier acknowledged messages).
	RetentionS int64 `json:"retention_s"`
	// QueueDropped counts messages the full appender queue dropped since
	// this collector started (each also named in a buffer_dropped event).
	QueueDropped uint64 `json:"queue_dropped"`

	oldest time.Time
}

// UplinkStatus is one uplink's connection and its view of the buffer.
// Published is MQTT's count; Sent and Timeouts are HJ 212's.
type UplinkStatus struct {
	Kind          string  `json:"kind"`
	Backlog       uint64  `json:"backlog"`
	OldestUnacked *string `json:"oldest_unacked"`
	Connected     bool    `json:"connected"`
	Connects      uint64  `json:"connects"`
	Published     *uint64 `json:"published,omitempty"`
	Sent          *uint64 `json:"sent,omitempty"`
	Resent        uint64  `json:"resent"`
	Acked         uint64  `json:"acked"`
	Timeouts      *uint64 `json:"timeouts,omitempty"`
	LastError     string  `json:"last_error"`
	// AcksIgnored counts acknowledgements of seqs not awaited on the
	// connection; AcksRejected payloads refused (too big, not JSON).
	AcksIgnored  uint64 `json:"acks_ignored"`
	AcksRejected uint64 `json:"acks_rejected"`
	// Settings are what an HJ 212 platform may set, in effect now.
	Settings *HJ212Settings `json:"settings,omitempty"`

	oldestUnacked time.Time
}

// HJ212Settings are the HJ 212 values in effect (a platform may have set
// them; the password is never shown).
type HJ212Settings struct {
	RtdIntervalS float64 `json:"rtd_interval_s"`
	MinInterval  int     `json:"min_interval_min"`
	RealTime     bool    `json:"realtime_upload"`
	OverTimeS    float64 `json:"overtime_s"`
	ReCount      int     `json:"recount"`
}

// PointStatus is a point's last reading.
type PointStatus struct {
	Point   string `json:"point"`
	Name    string `json:"name"`
	Unit    string `json:"unit"`
	Kind    string `json:"kind"`
	Device  string `json:"device"`
	Value   any    `json:"value"`
	Quality string `json:"quality"` // "not polled" before the first poll
	Alarm   string `json:"alarm,omitempty"`
	Fault   string `json:"fault,omitempty"`
	Updated string `json:"updated,omitempty"`
	// Maintenance is set while the point is out of service.
	Maintenance *edge.MaintenanceStatus `json:"maintenance,omitempty"`

	good bool
}

// GroupStatus is a poll group's record.
type GroupStatus struct {
	Group        string  `json:"group"`
	IntervalS    float64 `json:"interval_s"`
	Ticks        uint64  `json:"ticks"`
	Overruns     uint64  `json:"overruns"`
	LastTickS    float64 `json:"last_tick_s"`
	MaxTickS     float64 `json:"max_tick_s"`
	TotalTickS   float64 `json:"total_tick_s"`
	DeviceCount  int     `json:"devices"`
	PointsPolled int     `json:"points"`
}

// DeviceStatus is one device's record in one poll group. Requests counts
// the Modbus requests sent to the device (all groups; absent for I2C).
type DeviceStatus struct {
	Device      string  `json:"device"`
	Group       string  `json:"group"`
	Reads       uint64  `json:"reads"`
	Failures    uint64  `json:"failures"`
	LastSuccess string  `json:"last_success,omitempty"`
	Requests    *uint64 `json:"requests,omitempty"`

	lastSuccess time.Time
}

// ListenerStatus is a local listener's connection record.
type ListenerStatus struct {
	Listener     string `json:"listener"`
	Addr         string `json:"addr"`
	Active       int    `json:"active"`
	Max          int    `json:"max"`
	Accepted     uint64 `json:"accepted"`
	Rejected     uint64 `json:"rejected"` // closed at once: Max were open
	AcceptErrors uint64 `json:"accept_errors"`
}

// ServiceStatus is a supervised service's record.
type ServiceStatus struct {
	Service   string `json:"service"`
	Restarts  uint64 `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
}

// Status takes the collector's status now.
func (c *Collector) Status() Status {
	now := time.Now()
	st := c.store.Stats()
	pts, ils := c.engine.Snapshot()
	cfg := c.Config()
	d := Status{Enterprise: cfg.Gateway.Enterprise, Gateway: cfg.Gateway.Code, UptimeS: int64(now.Sub(c.start).Seconds()),
		ConfigSHA256: cfg.SHA256, Interlocks: inZone(ils, c.loc), Uplinks: map[string]UplinkStatus{}, taken: now, loc: c.enc,
		GatewayName: cfg.Gateway.Name, Time: *c.enc.TimePtr(now), UTCOffset: cfg.Gateway.UTCOffset, Events: c.events.recent(),
		InterlockInfo: make(map[string]string, len(cfg.Interlocks))}
	for _, il := range cfg.Interlocks {
		d.InterlockInfo[il.Name] = il.Description
	}
	d.Buffer = BufferStatus{Durable: st.Durable, Degraded: st.Degraded, Messages: st.Messages, Bytes: st.Bytes, LastSeq: st.LastSeq,
		Dropped: st.Dropped, DroppedRanges: st.DroppedRanges, MemoryQueued: st.MemoryQueued, Oldest: c.enc.TimePtr(st.Oldest),
		Queue: c.queue.Len(), QueueDropped: c.queue.Dropped(), oldest: st.Oldest, RetentionS: int64(cfg.Buffer.Retention.D().Seconds())}
	for name, u := range st.Uplinks {
		us := UplinkStatus{Kind: name, Backlog: u.Depth, OldestUnacked: c.enc.TimePtr(u.OldestUnacked), oldestUnacked: u.OldestUnacked}
		if name == "mqtt" && c.mqtt != nil {
			s := c.mqtt.Stats()
			us.Connected, us.Connects, us.Published, us.Resent, us.Acked, us.LastError = s.Connected, s.Connects, &s.Sent, s.Resent, s.Acked, s.LastError
			us.AcksIgnored, us.AcksRejected = s.AcksIgnored, s.AcksRejected
		}
		if name == "hj212" && c.hj212 != nil {
			s := c.hj212.Stats()
			us.Connected, us.Connects, us.Sent, us.Resent, us.Acked, us.Timeouts, us.LastError = s.Connected, s.Connects, &s.Sent, s.Resent, s.Acked, &s.Timeouts, s.LastError
			us.AcksIgnored, us.AcksRejected = s.AcksIgnored, s.AcksRejected
			set := c.hj212.Settings()
			us.Settings = &HJ212Settings{RtdIntervalS: set.RtdInterval.Seconds(), MinInterval: set.MinInterval, RealTime: !set.RealTimeOff,
				OverTimeS: set.OverTime.Seconds(), ReCount: set.ReCount}
		}
		d.Uplinks[name] = us
	}
	byCode := make(map[string]*config.Point, len(cfg.Points))
	for i := range cfg.Points {
		byCode[cfg.Points[i].Code] = &cfg.Points[i]
	}
	for _, p := range pts {
		pd := PointStatus{Point: p.Code, Quality: p.Quality.String(), Alarm: p.Alarm.String(), Fault: p.Fault, Maintenance: maintInZone(p.Maintenance, c.loc)}
		if cp := byCode[p.Code]; cp != nil {
			pd.Name, pd.Unit, pd.Kind, pd.Device = cp.Name, cp.Unit, cp.Kind, cp.Device
		}
		if p.Updated.IsZero() {
			pd.Quality = "not polled"
		} else {
			pd.Updated = p.Updated.In(c.loc).Format(time.RFC3339)
			pd.good = p.Quality == edge.Good
		}
		switch p.Value.Kind {
		case edge.Number:
			pd.Value = p.Value.Num
		case edge.Bool:
			pd.Value = p.Value.Bool
		case edge.String:
			pd.Value = p.Value.Str
		}
		d.Points = append(d.Points, pd)
	}
	c.rt.RLock()
	defer c.rt.RUnlock()
	for _, gr := range c.groups {
		g := gr.g
		gs := g.Stats()
		n := 0
		for _, s := range g.Sources {
			n += len(s.Points)
		}
		d.Groups = append(d.Groups, GroupStatus{Group: gs.Name, IntervalS: gs.Interval.Seconds(), Ticks: gs.Ticks, Overruns: gs.Overruns,
			LastTickS: gs.LastDuration.Seconds(), MaxTickS: gs.MaxDuration.Seconds(), TotalTickS: gs.TotalDuration.Seconds(),
			DeviceCount: len(gs.Sources), PointsPolled: n})
		for _, s := range gs.Sources {
			ds := DeviceStatus{Device: s.Device, Group: gs.Name, Reads: s.Reads, Failures: s.Failures, lastSuccess: s.LastSuccess}
			if !s.LastSuccess.IsZero() {
				ds.LastSuccess = s.LastSuccess.In(c.loc).Format(time.RFC3339Nano)
			}
			if dev := c.devices[s.Device]; dev != nil {
				r := dev.Requests()
				ds.Requests = &r
			}
			d.Devices = append(d.Devices, ds)
		}
	}
	c.mu.Lock()
	if c.statusL != nil {
		d.Listeners = append(d.Listeners, c.statusL.status())
	}
	for _, l := range c.listeners {
		d.Listeners = append(d.Listeners, l.status())
	}
	for name, n := range c.svcRes {
		d.Services = append(d.Services, ServiceStatus{Service: name, Restarts: n, LastError: c.svcErr[name]})
	}
	c.mu.Unlock()
	sort.Slice(d.Services, func(i, j int) bool { return d.Services[i].Service < d.Services[j].Service })
	if c.audit != nil {
		_, d.AuditHead = c.audit.Head()
		d.Audit = c.audit.Usage()
	}
	return d
}

// Heartbeat renders the status an uplink publishes.
func (s *Status) Heartbeat(uplink string) jsonfmt.Heartbeat {
	us := s.Uplinks[uplink]
	hb := jsonfmt.Heartbeat{AuditHead: s.AuditHead, UptimeS: s.UptimeS, LastSeq: s.Buffer.LastSeq, Backlog: us.Backlog,
		OldestUnsent: us.OldestUnacked, Dropped: s.Buffer.Dropped, Durable: s.Buffer.Durable, Degraded: s.Buffer.Degraded,
		RetentionFrom: s.Buffer.Oldest, BufferBytes: s.Buffer.Bytes, ConfigSHA256: s.ConfigSHA256}
	for _, r := range s.Buffer.DroppedRanges {
		hb.DroppedRanges = append(hb.DroppedRanges, [2]uint64{r.First, r.Last})
	}
	for _, il := range s.Interlocks {
		bypassed := s.taken.Before(il.BypassUntil)
		if il.Tripped {
			hb.Tripped = append(hb.Tripped, il.Name)
		}
		if bypassed {
			hb.Bypassed = append(hb.Bypassed, il.Name)
		}
		hi := jsonfmt.HeartbeatInterlock{Name: il.Name, Tripped: il.Tripped, Bypassed: bypassed, Cause: il.Cause, Actions: []jsonfmt.HeartbeatAction{}}
		for _, a := range il.Actions {
			hi.Actions = append(hi.Actions, jsonfmt.HeartbeatAction{Device: a.Device, Table: a.Table, Address: a.Address, Write: a.Write,
				State: a.State, Error: a.Error, Since: timePtr(s.loc, a.Since), ReadBack: a.ReadBack, Feedback: a.Feedback})
		}
		hb.Interlocks = append(hb.Interlocks, hi)
	}
	return hb
}

// heartbeat is the status an uplink publishes.
func (c *Collector) heartbeat(uplink string) jsonfmt.Heartbeat {
	st := c.Status()
	return st.Heartbeat(uplink)
}

// meta is the point catalogue.
func (c *Collector) meta() []byte {
	var pts []jsonfmt.MetaPoint
	snap, _ := c.engine.Snapshot()
	live := map[string]edge.PointStatus{}
	for _, p := range snap {
		live[p.Code] = p
	}
	for _, p := range c.Config().Points {
		mp := jsonfmt.MetaPoint{Point: p.Code, Name: p.Name, Kind: p.Kind, Unit: p.Unit, Thresholds: map[string]*float64{"LL": nil, "L": nil, "H": nil, "HH": nil},
			InService: true}
		if m := live[p.Code].Maintenance; m != nil {
			mp.InService = false
			mp.OutOfService = &jsonfmt.OutOfService{Reason: m.Reason, By: m.By, Since: c.enc.TimePtr(m.Since), Until: c.enc.TimePtr(m.Until)}
		}
		if len(p.Range) == 2 {
			mp.Range = &[2]float64{p.Range[0], p.Range[1]}
		}
		if a := p.Alarms; a != nil {
			mp.Thresholds = map[string]*float64{"LL": a.LL, "L": a.L, "H": a.H, "HH": a.HH}
		}
		if p.HJ212 != nil {
			mp.Factor = p.HJ212.Factor
		}
		pts = append(pts, mp)
	}
	return c.enc.Meta(time.Now(), pts)
}

// inZone puts the interlocks' times in the configured offset, so that
// every time in Status has the same one.
func inZone(ils []edge.InterlockStatus, loc *time.Location) []edge.InterlockStatus {
	in := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.In(loc)
	}
	for i := range ils {
		il := &ils[i]
		il.TrippedAt, il.BypassUntil = in(il.TrippedAt), in(il.BypassUntil)
		for k := range il.Actions {
			a := &il.Actions[k]
			a.Since, a.VerifiedAt = in(a.Since), in(a.VerifiedAt)
		}
	}
	return ils
}

// maintInZone is m with its times in the configured offset.
func maintInZone(m *edge.MaintenanceStatus, loc *time.Location) *edge.MaintenanceStatus {
	if m == nil {
		return nil
	}
	c := *m
	c.Since, c.Until = c.Since.In(loc), c.Until.In(loc)
	return &c
}
