package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is one collector's whole configuration.
type Config struct {
	// File is the path the config was loaded from ("" when parsed from memory).
	File string `yaml:"-"`
	// SHA256 is the hex SHA-256 of the file's bytes (the heartbeat names
	// the running config by it).
	SHA256 string `yaml:"-"`
	// Raw is the file's bytes as parsed (config versions keep them).
	Raw []byte `yaml:"-"`

	// Warnings are what the config holds but should not (e.g. TLS without
	// certificate checks), in file order: validate prints them, run logs
	// each as a WARN. They do not stop the config from loading.
	Warnings Problems `yaml:"-"`

	Gateway    Gateway     `yaml:"gateway"`
	Buses      []Bus       `yaml:"buses"`
	Devices    []Device    `yaml:"devices"`
	Points     []Point     `yaml:"points"`
	Interlocks []Interlock `yaml:"interlocks"`
	Buffer     Buffer      `yaml:"buffer"`
	Uplink     Uplink      `yaml:"uplink"`
	Status     Status      `yaml:"status"`
	Audit      Audit       `yaml:"audit"`
	Log        Log         `yaml:"log"`
	// ModbusServer is the control room's read-only Modbus TCP server (off when absent).
	ModbusServer *ModbusServer `yaml:"modbus_server"`
}

// Gateway identifies the site and the box to the platform.
type Gateway struct {
	Enterprise string `yaml:"enterprise"` // required: the enterprise code the platform assigned
	Code       string `yaml:"code"`       // required: this gateway's code
	Name       string `yaml:"name"`
	UTCOffset  string `yaml:"utc_offset"` // default +08:00
}

// Bus types.
const (
	BusModbusTCP = "modbus-tcp"
	BusModbusRTU = "modbus-rtu"
	BusI2C       = "i2c"
	// RTU framing over TCP to a serial server (DTU) the collector dials,
	// and over connections DTUs dial in to the collector with (docs/dtu.md).
	BusModbusRTUTCP = "modbus-rtu-tcp"
	BusModbusRTUDTU = "modbus-rtu-dtu"
)

// Bus is one line the gateway talks on: a Modbus TCP endpoint, an RS-485
// line, or an I2C bus.
type Bus struct {
	Name    string `yaml:"name"`
	Type    string `yaml:"type"`
	Address string `yaml:"address"` // modbus-tcp: host:port
	Device  string `yaml:"device"`  // modbus-rtu: serial device; i2c: bus name ("1" or /dev/i2c-1)

	Baud     int    `yaml:"baud"`      // modbus-rtu, default 9600
	DataBits int    `yaml:"data_bits"` // default 8
	Parity   string `yaml:"parity"`    // none|even|odd, default none
	StopBits int    `yaml:"stop_bits"` // default 1
	// FrameGap is extra silence after each transaction, for slow slaves.
	FrameGap Duration `yaml:"frame_gap"`
	// ConnectTimeout bounds a TCP connect (default 3s).
	ConnectTimeout Duration `yaml:"connect_timeout"`

	// modbus-rtu-dtu: the host:port DTUs dial in to (several buses may
	// share one) and how this bus's DTU is recognised.
	Listen   string       `yaml:"listen"`
	Register *DTURegister `yaml:"register"`
}

// Device is one slave on a bus.
type Device struct {
	Name string `yaml:"name"`
	Bus  string `yaml:"bus"`
	// Unit is the Modbus unit id (0-247); required on Modbus buses.
	Unit *int `yaml:"unit"`
	// Address is the 7-bit I2C address (0x08-0x77); required on I2C buses.
	Address *int `yaml:"address"`
	// Model of an I2C device: bme280, bmp280, ads1115, ads1015, generic.
	Model string `yaml:"model"`

	Timeout   Duration `yaml:"timeout"`    // per request, default 1s
	Retries   *int     `yaml:"retries"`    // after the first attempt, default 1
	WordOrder string   `yaml:"word_order"` // ABCD|CDAB|BADC|DCBA (64-bit: ABCDEFGH|GHEFCDAB|BADCFEHG|HGFEDCBA), default ABCD
	// MaxGap is the largest run of unused registers (or coils) a block read
	// spans to save a request (default 10).
	MaxGap *int `yaml:"max_gap"`
	// MaxRegisters caps a register block read (default and protocol max 125).
	MaxRegisters int `yaml:"max_registers"`
	// MaxBits caps a coil or discrete block read (default and max 2000).
	MaxBits int `yaml:"max_bits"`
	// ProbeEvery: after a dead slave's retries fail, it is only tried every
	// N ticks until it answers (default 10).
	ProbeEvery int `yaml:"probe_every"`

	// I2C ADC: shunt resistor of 4-20 mA inputs, in ohms (ads1115/ads1015).
	ShuntOhms float64 `yaml:"shunt_ohms"`
	// I2C generic: bytes to write before reading (a conversion command), and
	// the wait after it.
	Command []int    `yaml:"command"`
	Wait    Duration `yaml:"wait"`
}

// Point kinds.
var PointKinds = []string{"gas", "level", "temperature", "pressure", "other"}

// Point is one measurement: a tag (位号) on a device.
type Point struct {
	Code     string   `yaml:"code"` // the plant's tag, unique
	Name     string   `yaml:"name"`
	Kind     string   `yaml:"kind"`
	Device   string   `yaml:"device"`
	Interval Duration `yaml:"interval"` // poll interval, default 1s
	Source   Source   `yaml:"source"`

	Scale  *float64 `yaml:"scale"` // default 1
	Offset float64  `yaml:"offset"`
	// RawRange and Range together map raw linearly to engineering units:
	// RawRange[0] -> Range[0], RawRange[1] -> Range[1] (e.g. 4000..20000
	// counts -> 0..100 %LEL). Applied after scale and offset.
	RawRange []float64 `yaml:"raw_range"`
	Unit     string    `yaml:"unit"`
	// Range is the instrument's measuring range [min, max]: values outside
	// are over_range / under_range.
	Range []float64 `yaml:"range"`
	// Loop marks a 4-20 mA signal: RawRange holds the raw values at 4 and
	// 20 mA, and below 3.6 mA or above 21 mA is a sensor fault (NAMUR NE43).
	Loop bool `yaml:"loop"`
	// StuckAfter: a value that does not change for this long is a sensor
	// fault (0 = off).
	StuckAfter  Duration `yaml:"stuck_after"`
	Maintenance bool     `yaml:"maintenance"`

	Report Report      `yaml:"report"`
	Gas    *Gas        `yaml:"gas"`
	Alarms *Alarms     `yaml:"alarms"`
	HJ212  *PointHJ212 `yaml:"hj212"`
	// Diagnostics tie the instrument's own status bits to this point's
	// quality (docs/points.md): e.g. an ADAM open-circuit bit is
	// sensor_fault, a Midas detector in warm-up is maintenance.
	Diagnostics []Diagnostic `yaml:"diagnostics"`
	// States name the values of a state field (source.bits), reported as
	// the string value.
	States []State `yaml:"states"`
}

// Diagnostic is one status condition of the instrument: a bit of a
// register (or a coil/discrete input) is 1, or a register's masked value is
// one of the given values.
type Diagnostic struct {
	Name    string     `yaml:"name"`
	Source  DiagSource `yaml:"source"`
	Quality string     `yaml:"quality"` // default sensor_fault
	Mask    *int       `yaml:"mask"`    // also accepted inside source
	Equals  *int       `yaml:"equals"`
	In      []int      `yaml:"in"`
}

// DiagSource is the register a diagnostic looks at, on the point's device.
type DiagSource struct {
	Table   string `yaml:"table"` // holding|input|coil|discrete
	Address *int   `yaml:"address"`
	Bit     *int   `yaml:"bit"`
	Mask    *int   `yaml:"mask"`
	Equals  *int   `yaml:"equals"`
	In      []int  `yaml:"in"`
}

// State names one value of a state field.
type State struct {
	Value *int   `yaml:"value"`
	Name  string `yaml:"name"`
}

// DiagQualities are the qualities a diagnostic condition may set.
var DiagQualities = []string{"sensor_fault", "maintenance", "comm_fault", "over_range", "under_range"}

// Condition returns the diagnostic's mask and accepted values (bit < 0), or
// its bit (mask 0), merging what was written in the source and beside it.
func (d *Diagnostic) Condition() (bit int, mask uint16, in []uint16) {
	if d.Source.Bit != nil {
		return *d.Source.Bit, 0, nil
	}
	if d.Source.Table == TableCoil || d.Source.Table == TableDiscrete {
		return 0, 0, nil
	}
	m := d.Mask
	if d.Source.Mask != nil {
		m = d.Source.Mask
	}
	if m != nil {
		mask = uint16(*m)
	}
	for _, e := range []*int{d.Equals, d.Source.Equals} {
		if e != nil {
			in = append(in, uint16(*e))
		}
	}
	for _, x := range append(append([]int(nil), d.In...), d.Source.In...) {
		in = append(in, uint16(x))
	}
	return -1, mask, in
}

// Register tables.
const (
	TableCoil     = "coil"
	TableDiscrete = "discrete"
	TableHolding  = "holding"
	TableInput    = "input"
)

// Source says where a point's raw value comes from.
type Source struct {
	// Modbus
	Table     string `yaml:"table"`      // coil|discrete|holding|input
	Address   *int   `yaml:"address"`    // 0-based protocol address
	Type      string `yaml:"type"`       // see regs.TypeNames; default uint16 (bool for coil/discrete)
	WordOrder string `yaml:"word_order"` // overrides the device's
	Bit       *int   `yaml:"bit"`        // bool from one bit (0-15) of a register, or (I2C generic) 0-7 of the byte
	Bits      string `yaml:"bits"`       // "4-5": an unsigned field of a register (type uint16)
	Length    int    `yaml:"length"`     // string: registers (Modbus) or bytes (I2C)

	// I2C
	Channel  *int   `yaml:"channel"`  // ads1115/ads1015 input 0-3
	Measure  string `yaml:"measure"`  // bme280/bmp280: temperature|pressure|humidity
	Register *int   `yaml:"register"` // generic: register address to read from
}

// Report modes.
const (
	ReportEvery  = "every"
	ReportChange = "change"
)

// Report says which polls become readings in the uplink. Alarms are always
// evaluated on every poll.
type Report struct {
	Mode        string   `yaml:"mode"`         // every|change, default every
	Deadband    float64  `yaml:"deadband"`     // change: in the point's unit
	MaxInterval Duration `yaml:"max_interval"` // change: forced report, default 60s
}

// Gas types.
const (
	GasCombustible = "combustible"
	GasToxic       = "toxic"
	GasOxygen      = "oxygen"
)

// Gas describes a gas detector for the GB/T 50493 checks.
type Gas struct {
	Type string   `yaml:"type"` // combustible|toxic|oxygen
	OEL  *float64 `yaml:"oel"`  // toxic: occupational exposure limit, in the point's unit
	IDLH *float64 `yaml:"idlh"` // toxic: alternative reference, in the point's unit
}

// Alarms are a point's process alarm limits.
type Alarms struct {
	LL *float64 `yaml:"LL"`
	L  *float64 `yaml:"L"`
	H  *float64 `yaml:"H"`
	HH *float64 `yaml:"HH"`
	// Hysteresis: an alarm clears once the value is back inside the limit by
	// this much (point's unit).
	Hysteresis float64  `yaml:"hysteresis"`
	OnDelay    Duration `yaml:"on_delay"`
	OffDelay   Duration `yaml:"off_delay"`
	// AlarmWhen makes a bool point (a status bit, a detector's own relay) an
	// alarm: raised while the value equals AlarmWhen, at Level (HH unless
	// level: H), with the delays above. It can then be an interlock input.
	AlarmWhen *bool  `yaml:"alarm_when"`
	Level     string `yaml:"level"`
}

// PointHJ212 holds a point's HJ 212 settings.
type PointHJ212 struct {
	Factor string `yaml:"factor"` // factor code, e.g. a21026
}

// Interlock fault modes.
const (
	OnFaultTrip = "trip"
	OnFaultHold = "hold"
)

// Interlock is a local safety function: a condition over alarm states of
// points, and the outputs it writes when it trips.
type Interlock struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	When        Condition `yaml:"when"`
	// OnFault: how a faulted input votes: trip (fail-safe, default) or hold.
	OnFault string   `yaml:"on_fault"`
	OnDelay Duration `yaml:"on_delay"`
	Latch   *bool    `yaml:"latch"` // default true: stays tripped until a manual reset
	Actions []Output `yaml:"actions"`
	// OnReset: outputs written by a manual reset (none by default: a reset
	// never re-opens a valve unless told to).
	OnReset []Output `yaml:"on_reset"`
	// ReadbackEvery: while tripped, the outputs are read back this often
	// and re-asserted when changed (default 10s).
	ReadbackEvery Duration `yaml:"readback_every"`
}

// Condition is a vote over inputs.
type Condition struct {
	// Vote: any (1ooN, default), all (NooN), or MooN such as 2oo3.
	Vote   string  `yaml:"vote"`
	Inputs []Input `yaml:"inputs"`
}

// Input is one point's alarm level as an interlock input. The input is
// true while the point's alarm at Level (or a more severe one on the same
// side) is active.
type Input struct {
	Point string `yaml:"point"`
	Level string `yaml:"level"` // LL|L|H|HH
}

// Output is one write of an interlock.
type Output struct {
	Device  string   `yaml:"device"`
	Table   string   `yaml:"table"` // coil|holding
	Address *int     `yaml:"address"`
	Value   *float64 `yaml:"value"`   // coil: 0 or 1
	Verify  *bool    `yaml:"verify"`  // read back after writing, default true
	Retries *int     `yaml:"retries"` // default 2
	// Feedback: a point (a valve's limit switch) that must reach Value
	// within the valve's travel time: the proof that the plant moved.
	Feedback *Feedback `yaml:"feedback"`
}

// DiscreteLevel is the level an alarm_when alarm raises: HH unless H.
func (a *Alarms) DiscreteLevel() string {
	if a.Level == "H" {
		return "H"
	}
	return "HH"
}

// Feedback is an interlock action's proof from the plant.
type Feedback struct {
	Point  string    `yaml:"point"`
	Value  SafeValue `yaml:"value"` // true/false or a number
	Within Duration  `yaml:"within"`
}

// SafeValue is a value a point reads in the safe state: true, false or a
// number (false is 0, true is 1).
type SafeValue struct {
	Num float64
	Set bool
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (v *SafeValue) UnmarshalYAML(n *yaml.Node) error {
	var b bool
	if n.Tag == "!!bool" && n.Decode(&b) == nil {
		*v = SafeValue{Set: true}
		if b {
			v.Num = 1
		}
		return nil
	}
	var f float64
	if (n.Tag == "!!int" || n.Tag == "!!float") && n.Decode(&f) == nil {
		*v = SafeValue{Num: f, Set: true}
		return nil
	}
	v.Set = true // present, if wrong: the error says so, not "required"
	return fmt.Errorf("want true, false or a number, got %q", n.Value)
}

// Buffer configures the store-and-forward buffer.
type Buffer struct {
	Dir       string   `yaml:"dir"`       // default /var/lib/edgecollector
	MaxBytes  Size     `yaml:"max_bytes"` // default 1GiB
	MinFree   Size     `yaml:"min_free"`  // keep this much disk free, default 64MiB
	Retention Duration `yaml:"retention"` // default 720h (30 days)
	// MemoryQueue bounds the messages held in memory when the disk is full
	// or the database unusable (default 10000).
	MemoryQueue int `yaml:"memory_queue"`
	// Queue bounds the hand-off from the poll groups to the appender
	// (default 1024 messages).
	Queue int `yaml:"queue"`
	// MaxMessageBytes splits a tick's readings into several messages above
	// this encoded size (default 65536).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// CommitInterval is the most time readings wait so that several ticks
	// share one write and sync of the buffer (group commit); events never
	// wait. 0 syncs every tick. Default 1s.
	CommitInterval *Duration `yaml:"commit_interval"`
	// Profile: small (about 40 MB RSS, for 32-bit and small gateways) or
	// default (badger's own sizes). Default small.
	Profile string `yaml:"profile"`
}

// Uplink holds the transports to the platform; both may run together.
type Uplink struct {
	MQTT  *MQTT  `yaml:"mqtt"`
	HJ212 *HJ212 `yaml:"hj212"`
}

// MQTT is the native JSON uplink.
type MQTT struct {
	URL          string   `yaml:"url"` // tcp://host:1883, ssl://host:8883
	ClientID     string   `yaml:"client_id"`
	TopicPrefix  string   `yaml:"topic_prefix"` // default safety
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	PasswordEnv  string   `yaml:"password_env"`
	TLS          *TLS     `yaml:"tls"`
	KeepAlive    Duration `yaml:"keepalive"` // default 30s
	Inflight     int      `yaml:"inflight"`  // unacknowledged publishes at once, default 32
	// BacklogRate caps the backlog drain in messages/s (0 = unlimited).
	BacklogRate float64  `yaml:"backlog_rate"`
	Heartbeat   Duration `yaml:"heartbeat"` // status heartbeat, default 30s
	// ReconnectMin and ReconnectMax bound the reconnect backoff (1s, 60s).
	ReconnectMin Duration     `yaml:"reconnect_min"`
	ReconnectMax Duration     `yaml:"reconnect_max"`
	PlatformAck  *PlatformAck `yaml:"platform_ack"`
}

// PlatformAck turns on end-to-end acknowledgement on {prefix}/.../ack.
type PlatformAck struct {
	Enabled bool     `yaml:"enabled"`
	Timeout Duration `yaml:"timeout"` // resend after, default 30s
}

// TLS configures a TLS client.
type TLS struct {
	CA                 string `yaml:"ca"`
	Cert               string `yaml:"cert"`
	Key                string `yaml:"key"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// HJ212 is the HJ 212 TCP uplink.
type HJ212 struct {
	Address   string   `yaml:"address"` // host:port of the platform
	Version   string   `yaml:"version"` // 2017|2025, default 2017
	ST        string   `yaml:"st"`      // system code, default 32
	PW        string   `yaml:"pw"`      // access password, default 123456
	MN        string   `yaml:"mn"`      // device id (MN), required
	Ack       *bool    `yaml:"ack"`     // ask for 9014 data acks, default true
	OverTime  Duration `yaml:"overtime"`
	ReCount   int      `yaml:"recount"`
	Heartbeat Duration `yaml:"heartbeat"` // 9015 (2025), default 60s
	// RTDInterval: one real-time packet (2011) per interval, aligned to its
	// boundary, with every factor (default 30s; 30s-3600s).
	RTDInterval Duration `yaml:"rtd_interval"`
	// AcceptPlatformTime: whether a platform's CN 1012 sets the gateway's
	// clock: never (default), when_unsynced (only while no time service
	// keeps it), always. ClockCommand, when set, is run with the time
	// (RFC 3339) as its last argument instead of setting the clock itself
	// (which needs CAP_SYS_TIME).
	AcceptPlatformTime string   `yaml:"accept_platform_time"`
	ClockCommand       []string `yaml:"clock_command"`
	// Stats turns on minute (2051) and hour (2061) statistics (default true).
	Stats      *bool            `yaml:"stats"`
	Encryption *HJ212Encryption `yaml:"encryption"`
}

// HJ212Encryption is the 2025 SM4 envelope.
type HJ212Encryption struct {
	KeyFile  string `yaml:"key_file"` // 16-byte key, raw or 32 hex digits
	Encoding string `yaml:"encoding"` // raw|hex, default raw
}

// Status is the optional read-only HTTP listener.
type Status struct {
	// Listen: host:port; a bare :port binds 127.0.0.1. Empty: off.
	Listen string `yaml:"listen"`
	// On a non-loopback address one of these is required (IEC 62443-4-2
	// CR 1.1); there is no default password. TokenFile holds a bearer
	// token; User with PasswordFile is HTTP basic auth.
	TokenFile    string     `yaml:"token_file"`
	User         string     `yaml:"user"`
	PasswordFile string     `yaml:"password_file"`
	TLS          *StatusTLS `yaml:"tls"`
}

// StatusTLS serves the status listener over HTTPS.
type StatusTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Audit is the tamper-evident audit log.
// Rotation and pruning default to edge/audit.DefaultOpts (docs/audit.md).
type Audit struct {
	File          string   `yaml:"file"`            // default <buffer.dir>/audit.log
	KeyFile       string   `yaml:"key_file"`        // HMAC key, outside the data dir
	MaxFileBytes  Size     `yaml:"max_file_bytes"`  // rotate the active file at this size
	MaxFileAge    Duration `yaml:"max_file_age"`    // rotate once its first entry is this old
	MaxTotalBytes Size     `yaml:"max_total_bytes"` // all files together; the oldest are pruned
	MaxAge        Duration `yaml:"max_age"`         // prune files older than this (0: by size only)
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error, default info
	Format string `yaml:"format"` // text|json, default text
}

// Duration is a time.Duration written as a Go duration ("500ms", "10s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like 500ms or 10s")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("want a duration like 500ms or 10s, got %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Size is a byte count written as a number or with a unit (512MiB, 1GB).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseSize parses "1GiB", "512MB", "4096".
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("want a size like 512MiB or 1GiB")
	}
	return Size(f * float64(mult)), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size like 512MiB or 1GiB")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("want a size like 512MiB or 1GiB, got %q", n.Value)
	}
	*s = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s Size) MarshalYAML() (any, error) { return int64(s), nil }
