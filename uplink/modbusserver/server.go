package modbusserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"time"

	smodbus "github.com/simonvetter/modbus"

	"github.com/hazwatch/edgecollector/edge"
)

// Snapshotter is what the server reads: edge.Engine's Snapshot.
type Snapshotter interface {
	Snapshot() ([]edge.PointStatus, []edge.InterlockStatus)
}

// Opts configure a Server.
type Opts struct {
	// Listen is host:port; a bare :port binds 127.0.0.1.
	Listen string
	// Unit is the only unit id answered; others get exception 0B (gateway
	// target failed to respond).
	Unit   byte
	Map    *Map
	Source Snapshotter
	// Refresh is how often the image is rebuilt from a snapshot (500ms).
	Refresh time.Duration
	// RetryListen is the wait before listening again when the address is
	// taken (2s).
	RetryListen time.Duration
	MaxClients  uint          // concurrent client connections (8)
	IdleTimeout time.Duration // a client connection idle this long is closed (2m)
	Now         func() time.Time
	Logger      *slog.Logger
}

// DefaultOpts returns the defaults.
func DefaultOpts() Opts {
	return Opts{Unit: 1, Refresh: 500 * time.Millisecond, RetryListen: 2 * time.Second, MaxClients: 8, IdleTimeout: 2 * time.Minute, Now: time.Now}
}

// Server is the read-only Modbus TCP server.
type Server struct {
	opts      Opts
	log       *slog.Logger
	img       atomic.Pointer[image]
	heartbeat uint16
	addr      atomic.Value // string, once listening
	requests  atomic.Uint64
	refused   atomic.Uint64
}

type image struct {
	regs []uint16
	bits []bool
}

// New checks opts; Run serves.
func New(o Opts) (*Server, error) {
	d := DefaultOpts()
	if o.Unit == 0 {
		o.Unit = d.Unit // 0 is broadcast, never a server's id
	}
	if o.Refresh <= 0 {
		o.Refresh = d.Refresh
	}
	if o.RetryListen <= 0 {
		o.RetryListen = d.RetryListen
	}
	if o.MaxClients == 0 {
		o.MaxClients = d.MaxClients
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Map == nil || o.Source == nil {
		return nil, errors.New("modbus server: a map and a snapshot source are required")
	}
	if strings.HasPrefix(o.Listen, ":") {
		o.Listen = "127.0.0.1" + o.Listen
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return nil, fmt.Errorf("modbus server: listen %q: %w", o.Listen, err)
	}
	return &Server{opts: o, log: o.Logger.With("component", "modbus-server", "listen", o.Listen)}, nil
}

// Addr is the address the server listens on ("" until it does).
func (s *Server) Addr() string {
	a, _ := s.addr.Load().(string)
	return a
}

// Stats are the requests answered and the writes refused so far.
func (s *Server) Stats() (requests, refused uint64) { return s.requests.Load(), s.refused.Load() }

// Run serves until ctx ends. An address that cannot be listened on is
// retried; Run never fails the collector.
func (s *Server) Run(ctx context.Context) error {
	s.refresh()
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + s.opts.Listen, Timeout: s.opts.IdleTimeout,
		MaxClients: s.opts.MaxClients, Logger: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}, &handler{s})
	if err != nil {
		return fmt.Errorf("modbus server: %w", err)
	}
	var lastErr string
	for {
		err := srv.Start()
		if err == nil {
			break
		}
		if err.Error() != lastErr {
			s.log.Warn("cannot listen for the control room yet; retrying", "err", err)
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.opts.RetryListen):
		}
	}
	s.addr.Store(s.opts.Listen)
	s.log.Info("serving the control room's Modbus map", "unit", s.opts.Unit, "points", len(s.opts.Map.Points), "interlocks", len(s.opts.Map.Interlocks))
	t := time.NewTicker(s.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			srv.Stop()
			return nil
		case <-t.C:
			s.refresh()
		}
	}
}

// refresh rebuilds the image from one snapshot.
func (s *Server) refresh() {
	s.img.Store(s.build(s.opts.Source.Snapshot()))
}

func (s *Server) build(ps []edge.PointStatus, is []edge.InterlockStatus) *image {
	m := s.opts.Map
	now := s.opts.Now()
	img := &image{regs: make([]uint16, m.Registers()), bits: make([]bool, m.Bits())}
	s.heartbeat++
	r := img.regs
	r[RegVersion], r[RegPoints], r[RegInterlocks], r[RegHeartbeat] = Version, uint16(len(m.Points)), uint16(len(m.Interlocks)), s.heartbeat
	ts := uint32(now.Unix())
	r[RegTimeHi], r[RegTimeLo] = uint16(ts>>16), uint16(ts)
	byCode := make(map[string]*edge.PointStatus, len(ps))
	for i := range ps {
		byCode[ps[i].Code] = &ps[i]
	}
	var alarms, faults uint16
	for _, mp := range m.Points {
		st, ok := byCode[mp.Code]
		if !ok || st.Updated.IsZero() {
			// Not read yet (or gone): never "good" with no value.
			st = &edge.PointStatus{Code: mp.Code, Quality: edge.Stale}
		}
		b := r[mp.Base : mp.Base+PointStride]
		f, valid := number(st)
		bits := f32(f, valid)
		b[OffFloat], b[OffFloat+1] = uint16(bits>>16), uint16(bits)
		b[OffInt16] = scaled(f, mp.Scale, valid)
		b[OffQuality], b[OffLevel] = uint16(st.Quality), uint16(st.Alarm)
		var status uint16
		if st.Alarm != edge.NoLevel {
			status |= StatusAlarm
			alarms++
		}
		if st.Alarm == edge.HH || st.Alarm == edge.LL {
			status |= StatusLevel2
		}
		if st.Quality.Faulted() || st.Quality == edge.Maintenance { // maintenance votes as faulted (DESIGN)
			status |= StatusFault
			faults++
		}
		if st.Quality == edge.Maintenance {
			status |= StatusMaintenance
		}
		if valid {
			status |= StatusValid
		}
		b[OffStatus] = status
		b[OffAge] = 65535
		if !st.Updated.IsZero() {
			b[OffAge] = uint16(min(65534, max(0, now.Sub(st.Updated).Seconds())))
		}
		for k := range PointBitStride {
			img.bits[int(mp.Bit)+k] = status&(1<<k) != 0
		}
		img.bits[BitAnyLevel2] = img.bits[BitAnyLevel2] || status&StatusLevel2 != 0
		img.bits[BitAnyFault] = img.bits[BitAnyFault] || status&StatusFault != 0
	}
	byName := make(map[string]*edge.InterlockStatus, len(is))
	for i := range is {
		byName[is[i].Name] = &is[i]
	}
	var tripped uint16
	for _, mi := range m.Interlocks {
		st, ok := byName[mi.Name]
		if !ok {
			continue
		}
		byp := now.Before(st.BypassUntil)
		img.bits[mi.Bit], img.bits[mi.Bit+1] = st.Tripped, byp
		if st.Tripped {
			tripped++
			img.bits[BitAnyTripped] = true
		}
		img.bits[BitAnyBypassed] = img.bits[BitAnyBypassed] || byp
	}
	img.bits[BitAlive] = true
	r[RegTripped], r[RegAlarms], r[RegFaults] = tripped, alarms, faults
	return img
}

// number is the point's value as a float, and whether it has one that a
// number register can carry.
func number(st *edge.PointStatus) (float64, bool) {
	if !st.Quality.HasValue() {
		return 0, false
	}
	switch st.Value.Kind {
	case edge.Number:
		return st.Value.Num, !math.IsNaN(st.Value.Num) && !math.IsInf(st.Value.Num, 0)
	case edge.Bool:
		if st.Value.Bool {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func f32(f float64, valid bool) uint32 {
	if !valid {
		return math.Float32bits(float32(math.NaN()))
	}
	return math.Float32bits(float32(f))
}

func scaled(f, scale float64, valid bool) uint16 {
	if !valid {
		return 0x8000
	}
	v := math.Round(f * scale)
	v = math.Max(-32767, math.Min(32767, v))
	return uint16(int16(v))
}

// handler answers from the current image.
type handler struct{ s *Server }

func (h *handler) unit(u uint8) error {
	h.s.requests.Add(1)
	if u != h.s.opts.Unit {
		return smodbus.ErrGWTargetFailedToRespond
	}
	return nil
}

func (h *handler) refuse() error {
	h.s.refused.Add(1)
	return smodbus.ErrIllegalFunction
}

func (h *handler) bits(addr, n uint16) ([]bool, error) {
	img := h.s.img.Load()
	if int(addr)+int(n) > len(img.bits) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	return append([]bool(nil), img.bits[addr:int(addr)+int(n)]...), nil
}

func (h *handler) regs(addr, n uint16) ([]uint16, error) {
	img := h.s.img.Load()
	if int(addr)+int(n) > len(img.regs) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	return append([]uint16(nil), img.regs[addr:int(addr)+int(n)]...), nil
}

func (h *handler) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	if req.IsWrite {
		return nil, h.refuse()
	}
	return h.bits(req.Addr, req.Quantity)
}

func (h *handler) HandleDiscreteInputs(req *smodbus.DiscreteInputsRequest) ([]bool, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	return h.bits(req.Addr, req.Quantity)
}

func (h *handler) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	if req.IsWrite {
		return nil, h.refuse()
	}
	return h.regs(req.Addr, req.Quantity)
}

func (h *handler) HandleInputRegisters(req *smodbus.InputRegistersRequest) ([]uint16, error) {
	if err := h.unit(req.UnitId); err != nil {
		return nil, err
	}
	return h.regs(req.Addr, req.Quantity)
}
