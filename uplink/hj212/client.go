package hj212

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink/backlograte"
)

// Store is what the client needs of the buffer.
type Store interface {
	// Unacked returns up to max messages with from <= seq < to (to == 0:
	// no bound) that uplink has not acknowledged, oldest first.
	Unacked(uplink string, from, to uint64, max int) ([]*edge.Message, error)
	// Ack records that uplink's platform has these messages.
	Ack(uplink string, seqs ...uint64) error
	// LastSeq is the highest seq assigned so far.
	LastSeq() uint64
	// Appended returns a channel closed at the next append.
	Appended() <-chan struct{}
	// Between calls fn for each stored message created in [from, to), in
	// creation order, until fn returns false.
	Between(from, to time.Time, fn func(*edge.Message) bool) error
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
// commands.
type Client struct {
	o      Opts
	enc    *Encoder
	frames FrameOpts
	log    *slog.Logger

	mu       sync.Mutex
	st       Stats
	overTime time.Duration
	reCount  int
}

// Stats count the client's work.
type Stats struct {
	Connected bool
	Connects  uint64
	Sent      uint64 // data packets written, first sends and resends
	Resent    uint64 // of which sent again: backlog and OverTime resends
	Acked     uint64 // seqs acknowledged in the buffer after a 9014 (acks off: after the write)
	Skipped   uint64 // seqs acknowledged without sending: events, points without factor codes
	Timeouts  uint64 // connections dropped after ReCount resends went unanswered
	Commands  uint64 // platform commands answered
	LastError string
	Since     time.Time
	OverTime  time.Duration // in effect (CN=1000 may have changed them)
	ReCount   int
}

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
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = d.ReconnectMin
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(d.ReconnectMax, o.ReconnectMin)
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
	c := &Client{o: o, overTime: o.OverTime, reCount: o.ReCount}
	c.enc = &Encoder{Version: v, ST: o.ST, PW: o.PW, MN: o.MN, Ack: o.Ack, Factors: o.Factors, Location: o.Location}
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
	c.st.OverTime, c.st.ReCount = o.OverTime, o.ReCount
	return c, nil
}

// Encoder is the client's encoder (the same packets it sends).
func (c *Client) Encoder() *Encoder { return c.enc }

// FrameOpts are the client's codec options (its cipher).
func (c *Client) FrameOpts() FrameOpts { return c.frames }

// Stats returns a copy of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *Client) update(f func(*Stats)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

// limits are OverTime and ReCount in effect.
func (c *Client) limits() (time.Duration, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overTime, c.reCount
}

func (c *Client) setLimits(ot time.Duration, rc int) {
	c.mu.Lock()
	c.overTime, c.reCount = ot, rc
	c.st.OverTime, c.st.ReCount = ot, rc
	c.mu.Unlock()
}

// Run connects, sends and reconnects until ctx ends; it never gives up and
// returns nil then.
func (c *Client) Run(ctx context.Context) error {
	backoff := c.o.ReconnectMin
	for {
		up, err := c.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.update(func(s *Stats) { s.Connected = false; s.LastError = errString(err) })
		if up > time.Minute {
			backoff = c.o.ReconnectMin
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		c.log.Warn("HJ 212 connection ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, c.o.ReconnectMax)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// connection runs one connection from dial to loss and returns how long it
// was up.
func (c *Client) connection(ctx context.Context) (time.Duration, error) {
	d := net.Dialer{Timeout: c.o.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.o.Address)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	start := time.Now()
	c.update(func(s *Stats) { s.Connected = true; s.Connects++; s.Since = start })
	c.log.Info("connected to the HJ 212 platform")
	err = c.session(ctx, conn)
	return time.Since(start), err
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
	sentAt  time.Time
	tries   int // resends after OverTime
}

// session is one connection's state; only its loop touches the maps.
type session struct {
	c    *Client
	conn net.Conn
	wmu  sync.Mutex // one writer at a time: the loop and the history worker

	liveFrom, liveNext, backNext uint64
	inflight                     map[uint64]*flight
	byQN                         map[string][]*flight // oldest first
	toAck                        []uint64             // written (acks off) or skipped, to acknowledge
	bucket                       *backlograte.Limiter
	failed                       map[uint64]bool // seqs that would not encode, logged once
}

// maxBatch bounds the seqs one fill handles before the loop looks at the
// platform's frames again.
const maxBatch = 256

func (c *Client) session(ctx context.Context, conn net.Conn) error {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		conn.Close()
		wg.Wait()
	}()
	s := &session{c: c, conn: conn, inflight: map[uint64]*flight{}, byQN: map[string][]*flight{},
		bucket: backlograte.New(c.o.BacklogRate), failed: map[uint64]bool{}}
	s.liveFrom = c.o.Store.LastSeq() + 1 // everything below was there at connect: the backlog
	s.liveNext, s.backNext = s.liveFrom, 1

	in := make(chan Packet, 16)
	fail := make(chan error, 2)
	hist := make(chan histRequest, 4)
	wg.Add(2)
	go func() { defer wg.Done(); s.read(sctx, in, fail) }()
	go func() { defer wg.Done(); s.historyWorker(sctx, hist, fail) }()

	var hb <-chan time.Time
	if c.enc.Version == V2025 && c.o.Heartbeat > 0 {
		t := time.NewTicker(c.o.Heartbeat)
		defer t.Stop()
		hb = t.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		appended := c.o.Store.Appended()
		more, err := s.fill()
		if err != nil {
			return err
		}
		var now <-chan time.Time
		if more {
			now = closedTime
		}
		var refill <-chan time.Time
		if !more && s.bucket.Limited() && s.backNext < s.liveFrom && s.room() > 0 {
			refill = time.After(s.bucket.Wait())
		}
		timer.Reset(s.nextDeadline())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-fail:
			return err
		case p := <-in:
			if err := s.handle(p, hist); err != nil {
				return err
			}
		case <-timer.C:
			if err := s.timeouts(); err != nil {
				return err
			}
		case <-hb:
			if err := s.heartbeat(); err != nil {
				return err
			}
		case <-appended:
		case <-refill:
		case <-now:
		}
	}
}

var closedTime = func() <-chan time.Time {
	ch := make(chan time.Time)
	close(ch)
	return ch
}()

// read turns the connection's bytes into packets until it fails.
func (s *session) read(ctx context.Context, in chan<- Packet, fail chan<- error) {
	r := NewReader(s.conn, s.c.frames)
	for {
		p, raw, err := r.Next()
		if err != nil {
			if errors.Is(err, ErrFrame) || errors.Is(err, ErrCRC) {
				s.c.log.Warn("skipping a frame from the platform", "err", err, "frame", clip(raw))
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

// room is how many more seqs may be sent now.
func (s *session) room() int {
	if !s.c.o.Ack {
		return maxBatch
	}
	return s.c.o.Window - len(s.inflight)
}

// fill sends what there is room for: live messages first, then the backlog
// oldest first. more reports that it stopped with work left.
func (s *session) fill() (more bool, err error) {
	defer s.flushAcks()
	handled := 0
	for handled < maxBatch {
		room := min(s.room(), maxBatch-handled)
		if room <= 0 {
			return false, nil
		}
		ms, err := s.c.o.Store.Unacked(s.c.o.Name, s.liveNext, 0, room)
		if err != nil {
			return false, fmt.Errorf("read buffer: %w", err)
		}
		for _, m := range ms {
			s.liveNext = m.Seq + 1
			if err := s.send(m, false); err != nil {
				return false, err
			}
		}
		handled += len(ms)
		if len(ms) < room {
			break
		}
	}
	for s.backNext < s.liveFrom && handled < maxBatch {
		room := min(s.room(), maxBatch-handled, s.bucket.Available())
		if room <= 0 {
			break
		}
		ms, err := s.c.o.Store.Unacked(s.c.o.Name, s.backNext, s.liveFrom, room)
		if err != nil {
			return false, fmt.Errorf("read buffer: %w", err)
		}
		if len(ms) == 0 {
			s.backNext = s.liveFrom
			break
		}
		for _, m := range ms {
			s.backNext = m.Seq + 1
			s.bucket.Take()
			if err := s.send(m, true); err != nil {
				return false, err
			}
		}
		handled += len(ms)
	}
	return handled >= maxBatch && s.room() > 0, nil
}

// flushAcks acknowledges what needs no 9014: skipped seqs, and written ones
// when acks are off.
func (s *session) flushAcks() {
	if len(s.toAck) == 0 {
		return
	}
	if err := s.c.o.Store.Ack(s.c.o.Name, s.toAck...); err != nil {
		s.c.log.Error("cannot record acknowledgements in the buffer; they will be sent again", "err", err, "first", s.toAck[0], "count", len(s.toAck))
	}
	s.toAck = s.toAck[:0]
}

// send writes a message's packets.
func (s *session) send(m *edge.Message, resend bool) error {
	if _, busy := s.inflight[m.Seq]; busy {
		return nil
	}
	parts, err := s.c.enc.Packets(m, resend)
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
		return nil
	}
	if len(parts) == 0 {
		s.toAck = append(s.toAck, m.Seq)
		s.c.update(func(st *Stats) { st.Skipped++ })
		return nil
	}
	if err := s.write(frames...); err != nil {
		return err
	}
	if s.c.o.OnSend != nil {
		s.c.o.OnSend(m, resend)
	}
	s.c.update(func(st *Stats) {
		st.Sent += uint64(len(parts))
		if resend {
			st.Resent += uint64(len(parts))
		}
	})
	if !s.c.o.Ack {
		s.toAck = append(s.toAck, m.Seq)
		s.c.update(func(st *Stats) { st.Acked++ })
		return nil
	}
	f := &flight{m: m, qn: parts[0].QN, acked: make([]bool, len(parts)), left: len(parts), sentAt: time.Now()}
	s.inflight[m.Seq] = f
	s.byQN[f.qn] = append(s.byQN[f.qn], f)
	return nil
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

// nextDeadline is how long until the oldest flight's OverTime runs out.
func (s *session) nextDeadline() time.Duration {
	ot, _ := s.c.limits()
	next := time.Hour
	now := time.Now()
	for _, f := range s.inflight {
		next = min(next, max(0, f.sentAt.Add(ot).Sub(now)))
	}
	return next
}

// timeouts sends again, RF=1, the packets of flights whose OverTime ran
// out, and drops the connection when one has been sent ReCount times
// again.
func (s *session) timeouts() error {
	ot, rc := s.c.limits()
	now := time.Now()
	seqs := make([]uint64, 0, len(s.inflight))
	for seq, f := range s.inflight {
		if now.Sub(f.sentAt) >= ot {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		f := s.inflight[seq]
		if f.tries >= rc {
			s.c.update(func(st *Stats) { st.Timeouts++ })
			return fmt.Errorf("seq %d (QN %s): no 9014 for %d of %d packets after %d sends, %s apart; the next connection sends it again",
				seq, f.qn, f.left, len(f.acked), f.tries+1, ot)
		}
		parts, err := s.c.enc.Packets(f.m, true)
		if err != nil || len(parts) != len(f.acked) {
			return fmt.Errorf("seq %d: re-encoding gave %d packets, first time %d: %v", seq, len(parts), len(f.acked), err)
		}
		var todo []Packet
		for i, p := range parts {
			if !f.acked[i] {
				todo = append(todo, p)
			}
		}
		frames, err := s.encode(todo)
		if err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		s.c.log.Debug("no 9014 in time; sending again", "seq", seq, "qn", f.qn, "packets", len(todo), "try", f.tries+2)
		if err := s.write(frames...); err != nil {
			return err
		}
		if s.c.o.OnSend != nil {
			s.c.o.OnSend(f.m, true)
		}
		f.tries++
		f.unnamed = 0
		f.sentAt = time.Now()
		s.c.update(func(st *Stats) { st.Sent += uint64(len(todo)); st.Resent += uint64(len(todo)) })
	}
	return nil
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
		s.c.log.Debug("9014 for no packet in flight (late or repeated)", "qn", p.QN)
		return
	}
	f := fl[0]
	switch {
	case p.IsSplit():
		if p.PNUM != len(f.acked) {
			s.c.log.Warn("9014 names a packet count we did not send", "qn", p.QN, "pnum", p.PNUM, "sent", len(f.acked))
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
	if err := s.c.o.Store.Ack(s.c.o.Name, f.m.Seq); err != nil {
		s.c.log.Error("cannot record the platform's acknowledgement in the buffer; the seq will be sent again", "seq", f.m.Seq, "err", err)
		return
	}
	s.c.update(func(st *Stats) { st.Acked++ })
}

// heartbeat sends a 9015 (2025).
func (s *session) heartbeat() error {
	p := Packet{QN: QNAt(s.c.o.Now().In(s.c.o.Location)), ST: s.c.o.ST, CN: CNHeartbeat, PW: s.c.o.PW, MN: s.c.o.MN,
		Flag: MakeFlag(s.c.enc.Version, false, false)}
	return s.writePackets(p)
}
