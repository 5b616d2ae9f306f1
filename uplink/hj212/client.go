package hj212

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink"
)

// Store is what the client needs of the buffer: what every uplink needs,
// and the time index for history requests.
type Store interface {
	uplink.Store
	// Between calls fn for each stored message of kind (0: any) created
	// in [from, to), streaming, until fn returns false.
	Between(from, to time.Time, kind edge.Kind, fn func(*edge.Message) bool) error
}

// Opts configure the client. Start from DefaultOpts: zero durations and
// counts take the defaults below, but Ack's zero value (false) means "no
// 9014 answers".
type Opts struct {
	// Name is the buffer's uplink name (default "hj212").
	Name string
	// Address is the platform's host:port.
	Address string
	// Version is "2017" (default) or "2025".
	Version string
	// ST is the system code (default "32"), PW the access password
	// (default "123456"), MN the device id the platform assigned
	// (required).
	ST, PW, MN string
	// Ack asks the platform for a CN=9014 answer to every data packet and
	// acknowledges a seq in the buffer only on it (DefaultOpts: true).
	// Off, a seq is acknowledged once its packets are written.
	Ack bool
	// OverTime is how long to wait for a 9014 before sending again (default
	// 10s); ReCount how many times to send again (default 3) before the
	// connection is dropped and the next one takes over. A CN=1000 from the
	// platform replaces both for the life of the client.
	OverTime time.Duration
	ReCount  int
	// Heartbeat is the interval of CN=9015 heartbeats, sent with version
	// 2025 only (default 60s; negative: none).
	Heartbeat time.Duration
	// Factors maps point codes to HJ 212 factor codes; points without one
	// are not sent.
	Factors map[string]string
	// SM4Key turns on the 2025 SM4 envelope (16 bytes; see ParseKey);
	// SM4Encoding is how the ciphertext is written: "raw" (default) or
	// "hex".
	SM4Key      []byte
	SM4Encoding string
	// Location is the time zone of QN, DataTime and the times of commands:
	// the configured UTC offset (nil: UTC).
	Location *time.Location
	// Window is how many seqs may await their 9014 at once (default 16).
	Window int
	// BacklogRate caps the backlog in seqs per second (0: unlimited).
	BacklogRate float64
	// ReconnectMin/Max bound the reconnect backoff (1s, 60s), with
	// jitter.
	ReconnectMin, ReconnectMax time.Duration
	// DialTimeout and WriteTimeout bound a connect and a write (10s each).
	DialTimeout, WriteTimeout time.Duration

	Store  Store
	Logger *slog.Logger
	// OnSend, when set, sees every data message written (tests, demo);
	// resend is true for the backlog and for resends after OverTime.
	OnSend func(m *edge.Message, resend bool)
	// Now is the clock of heartbeats and answers to CN=1011 (nil:
	// time.Now).
	Now func() time.Time

	// Settings are what the platform set before (persisted by the caller:
	// they outlive a restart); zero fields take the options above.
	// OnSettings sees every change a platform command makes, after the
	// command was accepted: it persists it and applies what is not the
	// client's (the real-time and minute intervals); an error answers the
	// command ExeRtn=2. Audit records every command that changes
	// something.
	Settings   Settings
	OnSettings func(Settings) error
	Audit      func(cn, what string)
	// ClockPolicy says whether a CN=1012 sets the gateway's clock:
	// "never" (default), "when_unsynced" (only while ClockSynced says the
	// clock is not kept by a time service), "always". SetClock steps it.
	ClockPolicy string
	ClockSynced func() bool
	SetClock    func(time.Time) error
}

// Settings are the values a platform's commands set and read.
type Settings struct {
	RtdInterval time.Duration `json:"rtd_interval"` // CN 1061/1062
	MinInterval int           `json:"min_interval"` // CN 1063/1064, minutes
	PW          string        `json:"pw"`           // CN 1072
	RealTimeOff bool          `json:"realtime_off"` // CN 2012 (off) / 2011 (on)
	OverTime    time.Duration `json:"overtime"`     // CN 1000
	ReCount     int           `json:"recount"`
}

// DefaultOpts are the documented defaults; set Address, MN, Factors and
// Store.
func DefaultOpts() Opts {
	return Opts{
		Name: "hj212", Version: "2017", ST: "32", PW: "123456", Ack: true,
		OverTime: 10 * time.Second, ReCount: 3, Heartbeat: 60 * time.Second,
		SM4Encoding: EncodingRaw, Window: 16,
		ReconnectMin: time.Second, ReconnectMax: 60 * time.Second,
		DialTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	}
}

// Client sends the buffer to one HJ 212 platform over TCP and answers its
// commands. What goes next, with which resend mark, and when a seq may be
// acknowledged is package uplink's delivery algorithm; the client holds the
// QN/PNO bookkeeping of 9014 answers and the platform's commands.
type Client struct {
	o      Opts
	enc    *Encoder
	frames FrameOpts
	log    *slog.Logger
	d      *uplink.Delivery

	mu       sync.Mutex
	overTime time.Duration
	reCount  int
	set      Settings
}

// Stats count the client's work: Sent and Resent count packets, Acked seqs
// acknowledged after their 9014s (acks off: after the write), Skipped seqs
// acknowledged without sending (events, points without factor codes),
// Timeouts connections dropped after ReCount resends went unanswered.
type Stats = uplink.Stats

// New checks the options and returns a client; Run starts it.
func New(o Opts) (*Client, error) {
	d := DefaultOpts()
	if o.Name == "" {
		o.Name = d.Name
	}
	if o.Version == "" {
		o.Version = d.Version
	}
	if o.ST == "" {
		o.ST = d.ST
	}
	if o.PW == "" {
		o.PW = d.PW
	}
	if o.OverTime <= 0 {
		o.OverTime = d.OverTime
	}
	if o.ReCount <= 0 {
		o.ReCount = d.ReCount
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = d.Heartbeat
	}
	if o.SM4Encoding == "" {
		o.SM4Encoding = d.SM4Encoding
	}
	if o.Window <= 0 {
		o.Window = d.Window
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = d.DialTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	var errs []error
	if o.Address == "" {
		errs = append(errs, errors.New("hj212: Address is required: the platform's host:port"))
	} else if _, _, err := net.SplitHostPort(o.Address); err != nil {
		errs = append(errs, fmt.Errorf("hj212: Address %q: want host:port: %w", o.Address, err))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("hj212: Store is required"))
	}
	v, err := ParseVersion(o.Version)
	if err != nil {
		errs = append(errs, err)
	}
	if st := o.Settings; st.PW != "" {
		o.PW = st.PW
	}
	if st := o.Settings; st.OverTime > 0 && st.ReCount > 0 {
		o.OverTime, o.ReCount = st.OverTime, st.ReCount
	}
	c := &Client{o: o, overTime: o.OverTime, reCount: o.ReCount, set: o.Settings}
	c.set.PW, c.set.OverTime, c.set.ReCount = o.PW, o.OverTime, o.ReCount
	if c.set.MinInterval == 0 {
		c.set.MinInterval = 1
	}
	c.enc = &Encoder{Version: v, ST: o.ST, PW: o.PW, MN: o.MN, Ack: o.Ack, Factors: o.Factors, Location: o.Location, NoRealTime: o.Settings.RealTimeOff}
	if v != 0 {
		errs = append(errs, c.enc.Check())
	}
	if o.SM4Key != nil {
		if v != V2025 {
			errs = append(errs, fmt.Errorf("hj212: SM4 encryption is an HJ 212-2025 feature; version is %s", o.Version))
		}
		ci, err := NewCipher(o.SM4Key, o.SM4Encoding)
		if err != nil {
			errs = append(errs, err)
		}
		c.frames.Cipher = ci
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.log = o.Logger.With("component", "uplink", "uplink", o.Name, "address", o.Address)
	do := uplink.DefaultOpts()
	do.Name, do.Store, do.Window, do.BacklogRate, do.Logger = o.Name, o.Store, o.Window, o.BacklogRate, c.log
	do.ReconnectMin, do.ReconnectMax = o.ReconnectMin, o.ReconnectMax
	if o.Ack {
		do.Timeout, do.MaxResends = o.OverTime, o.ReCount
	}
	if c.d, err = uplink.New(do); err != nil {
		return nil, fmt.Errorf("hj212: %w", err)
	}
	return c, nil
}

// Encoder is the client's encoder (the same packets it sends). A platform's
// CN=1072 (password) or 2011/2012 (real-time upload on/off) replaces it.
func (c *Client) Encoder() *Encoder { return c.encoder() }

func (c *Client) encoder() *Encoder {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc
}

// FrameOpts are the client's codec options (its cipher).
func (c *Client) FrameOpts() FrameOpts { return c.frames }

// Stats returns a copy of the counters.
func (c *Client) Stats() Stats { return c.d.Stats() }

func (c *Client) update(f func(*Stats)) { c.d.Update(f) }

// Limits are OverTime and ReCount in effect (CN=1000 may have changed them).
func (c *Client) Limits() (overTime time.Duration, reCount int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overTime, c.reCount
}

// setLimits applies a CN=1000 (from the connection's loop).
func (c *Client) setLimits(ot time.Duration, rc int) {
	c.mu.Lock()
	c.overTime, c.reCount = ot, rc
	c.mu.Unlock()
	if c.o.Ack {
		c.d.SetLimits(ot, rc)
	}
}

// Run connects, sends and reconnects until ctx ends; it never gives up and
// returns nil then.
func (c *Client) Run(ctx context.Context) error {
	return c.d.Run(ctx, c.connection)
}

// connection runs one connection from dial to loss.
func (c *Client) connection(ctx context.Context) error {
	d := net.Dialer{Timeout: c.o.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.o.Address)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	c.d.Begin()
	c.log.Info("connected to the HJ 212 platform")
	return c.session(ctx, conn)
}

// flight is a seq whose packets await the platform's 9014.
type flight struct {
	m     *edge.Message
	qn    string
	acked []bool // by PNO-1
	left  int
	// unnamed counts the 9014s since the last (re)send that name no PNO;
	// as many as there are parts left acknowledge them all.
	unnamed int
}

// session is one connection's state; only its loop touches the maps.
type session struct {
	c    *Client
	conn net.Conn
	wmu  sync.Mutex // one writer at a time: the loop and the history worker

	inflight map[uint64]*flight
	byQN     map[string][]*flight // oldest first
	failed   map[uint64]bool      // seqs that would not encode, logged once
}

func (c *Client) session(ctx context.Context, conn net.Conn) error {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		conn.Close()
		wg.Wait()
	}()
	s := &session{c: c, conn: conn, inflight: map[uint64]*flight{}, byQN: map[string][]*flight{}, failed: map[uint64]bool{}}

	in := make(chan Packet, 16)
	fail := make(chan error, 2)
	hist := make(chan histRequest, 4)
	wg.Add(2)
	go func() { defer wg.Done(); s.read(sctx, in, fail) }()
	go func() { defer wg.Done(); s.historyWorker(sctx, hist, fail) }()

	var hb <-chan time.Time
	if c.encoder().Version == V2025 && c.o.Heartbeat > 0 {
		t := time.NewTicker(c.o.Heartbeat)
		defer t.Stop()
		hb = t.C
	}
	for {
		w, err := c.d.Step(s.send)
		if errors.Is(err, uplink.ErrUnconfirmed) {
			return fmt.Errorf("9014: %w", err)
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-fail:
			return err
		case p := <-in:
			if err := s.handle(p, hist); err != nil {
				return err
			}
		case <-hb:
			if err := s.heartbeat(); err != nil {
				return err
			}
		case <-w.Appended:
		case <-w.Rescan:
		case <-w.Timer:
		}
	}
}

// read turns the connection's bytes into packets until it fails.
func (s *session) read(ctx context.Context, in chan<- Packet, fail chan<- error) {
	r := NewReader(s.conn, s.c.frames)
	for {
		p, raw, err := r.Next()
		if err != nil {
			if errors.Is(err, ErrFrame) || errors.Is(err, ErrCRC) {
				s.c.log.Warn("skipping a frame from the platform", "err", err, "frame", clip(raw))
				if errors.Is(err, ErrCRC) {
					s.crcError(raw)
				}
				continue
			}
			select {
			case fail <- fmt.Errorf("read: %w", err):
			default:
			}
			return
		}
		select {
		case in <- p:
		case <-ctx.Done():
			return
		}
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// send writes a message's packets; for a seq in flight (its OverTime ran
// out) only the packets not yet answered, RF=1.
func (s *session) send(m *edge.Message, resend bool) (uplink.Sent, error) {
	if f := s.inflight[m.Seq]; f != nil {
		return s.again(f)
	}
	parts, err := s.c.encoder().Packets(m, resend)
	var frames [][]byte
	if err == nil {
		frames, err = s.encode(parts)
	}
	if err != nil {
		// Cannot happen with a checked encoder; the seq stays
		// unacknowledged and is tried again on the next connection.
		if !s.failed[m.Seq] {
			s.failed[m.Seq] = true
			s.c.log.Error("cannot encode a buffered message; it stays in the buffer", "seq", m.Seq, "err", err)
		}
		return uplink.Sent{Outcome: uplink.Keep}, nil
	}
	if len(parts) == 0 {
		return uplink.Sent{Outcome: uplink.Done}, nil
	}
	if err := s.write(frames...); err != nil {
		return uplink.Sent{Outcome: uplink.Keep, Packets: len(parts)}, err
	}
	if s.c.o.OnSend != nil {
		s.c.o.OnSend(m, resend)
	}
	if !s.c.o.Ack {
		return uplink.Sent{Outcome: uplink.Done, Packets: len(parts)}, nil
	}
	f := &flight{m: m, qn: parts[0].QN, acked: make([]bool, len(parts)), left: len(parts)}
	s.inflight[m.Seq] = f
	s.byQN[f.qn] = append(s.byQN[f.qn], f)
	return uplink.Sent{Outcome: uplink.Await, Packets: len(parts)}, nil
}

// again sends, RF=1, the packets of a flight not yet answered.
func (s *session) again(f *flight) (uplink.Sent, error) {
	parts, err := s.c.encoder().Packets(f.m, true)
	if err != nil || len(parts) != len(f.acked) {
		return uplink.Sent{}, fmt.Errorf("seq %d: re-encoding gave %d packets, first time %d: %v", f.m.Seq, len(parts), len(f.acked), err)
	}
	var todo []Packet
	for i, p := range parts {
		if !f.acked[i] {
			todo = append(todo, p)
		}
	}
	frames, err := s.encode(todo)
	if err != nil {
		return uplink.Sent{}, fmt.Errorf("seq %d: %w", f.m.Seq, err)
	}
	s.c.log.Debug("no 9014 in time; sending again", "seq", f.m.Seq, "qn", f.qn, "packets", len(todo))
	if err := s.write(frames...); err != nil {
		return uplink.Sent{Outcome: uplink.Await, Packets: len(todo)}, err
	}
	if s.c.o.OnSend != nil {
		s.c.o.OnSend(f.m, true)
	}
	f.unnamed = 0
	return uplink.Sent{Outcome: uplink.Await, Packets: len(todo)}, nil
}

func (s *session) encode(ps []Packet) ([][]byte, error) {
	frames := make([][]byte, len(ps))
	for i, p := range ps {
		b, err := Encode(p, s.c.frames)
		if err != nil {
			return nil, err
		}
		frames[i] = b
	}
	return frames, nil
}

// write sends frames, whole, under the write deadline.
func (s *session) write(frames ...[]byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.c.o.WriteTimeout)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	bufs := net.Buffers(frames)
	if _, err := bufs.WriteTo(s.conn); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// writePackets encodes and writes packets that are not data (answers,
// heartbeats, history).
func (s *session) writePackets(ps ...Packet) error {
	frames, err := s.encode(ps)
	if err != nil {
		return err
	}
	return s.write(frames...)
}

// dataAck books a 9014: the packet it names, and the seq once all its
// packets are answered.
func (s *session) dataAck(p Packet) {
	if p.MN != "" && p.MN != s.c.o.MN {
		s.c.log.Warn("9014 for another MN ignored", "mn", p.MN, "qn", p.QN)
		return
	}
	fl := s.byQN[p.QN]
	if len(fl) == 0 {
		// Late or repeated, or for a seq not sent on this connection: it
		// acknowledges nothing.
		s.c.update(func(st *Stats) { st.AcksIgnored++ })
		s.c.log.Debug("9014 for no packet in flight on this connection; ignored", "qn", p.QN)
		return
	}
	f := fl[0]
	switch {
	case p.IsSplit():
		if p.PNUM != len(f.acked) || p.PNO < 1 || p.PNO > p.PNUM {
			s.c.log.Warn("9014 names a packet count we did not send", "qn", p.QN, "pnum", p.PNUM, "pno", p.PNO, "sent", len(f.acked))
			return
		}
		if i := p.PNO - 1; !f.acked[i] {
			f.acked[i] = true
			f.left--
		}
	default:
		// A 9014 that names no PNO cannot say which part it answers: the
		// parts sent in this round count as answered once as many 9014s
		// came as there are parts left; until then, on OverTime, all of
		// them are sent again.
		if f.unnamed++; f.unnamed >= f.left {
			for i := range f.acked {
				f.acked[i] = true
			}
			f.left = 0
		}
	}
	if f.left > 0 {
		return
	}
	delete(s.inflight, f.m.Seq)
	if len(fl) == 1 {
		delete(s.byQN, p.QN)
	} else {
		s.byQN[p.QN] = fl[1:]
	}
	s.c.d.Confirm(f.m.Seq)
}

// heartbeat sends a 9015 (2025).
func (s *session) heartbeat() error {
	p := Packet{QN: QNAt(s.c.o.Now().In(s.c.o.Location)), ST: s.c.o.ST, CN: CNHeartbeat, PW: s.c.encoder().PW, MN: s.c.o.MN,
		Flag: MakeFlag(s.c.encoder().Version, false, false)}
	return s.writePackets(p)
}
