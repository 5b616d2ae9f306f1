package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	gmodbus "github.com/grid-x/modbus"
)

// RTU framing over TCP: many sites put RS-485 instruments behind a serial
// server (a "DTU") that passes bytes between a TCP connection and the line
// unchanged. The collector either dials the serial server (NewRTUOverTCPLine,
// bus type modbus-rtu-tcp) or the DTU dials the collector (DTUListener, bus
// type modbus-rtu-dtu). Either way the frames are RTU frames with their CRC,
// checked by grid-x's RTU packager, and answers are read with the same
// resynchronising reader as the serial line (readRTUAnswer).

// DefaultDTUGap is the silence kept between two requests through a serial
// server: 3.5 characters at 9600 baud, the slowest line such servers are
// commonly set to. FrameGap adds to it.
const DefaultDTUGap = 4 * time.Millisecond

// maxPending bounds the bytes a connection buffers between requests; older
// bytes are noise and are dropped first.
const maxPending = 4096

// connStream is a TCP connection read by its own goroutine into a buffer,
// so that the transport can purge what arrived between requests (as
// ResetInputBuffer does on a serial port) and notices a peer that went away
// even while no request is on the wire.
type connStream struct {
	conn    net.Conn
	mu      sync.Mutex
	buf     []byte
	err     error
	wake    chan struct{} // capacity 1: new bytes or an error
	timeout time.Duration // of the next Read
	done    chan struct{} // closed when the reader goroutine ends
}

func newConnStream(c net.Conn) *connStream {
	s := &connStream{conn: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read()
	return s
}

func (s *connStream) read() {
	defer close(s.done)
	chunk := make([]byte, 512)
	for {
		n, err := s.conn.Read(chunk)
		s.mu.Lock()
		if n > 0 {
			s.buf = append(s.buf, chunk[:n]...)
			if len(s.buf) > maxPending {
				s.buf = s.buf[:copy(s.buf, s.buf[len(s.buf)-maxPending:])]
			}
		}
		if err != nil {
			s.err = err
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// SetReadTimeout sets the timeout of the next Read (rtuPort).
func (s *connStream) SetReadTimeout(d time.Duration) error {
	s.timeout = d
	return nil
}

// Read returns buffered bytes, waiting at most the read timeout for some;
// 0, nil when none came (rtuPort). The connection's error is returned once
// every byte received before it has been read.
func (s *connStream) Read(p []byte) (int, error) {
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		if len(s.buf) > 0 {
			n := copy(p, s.buf)
			s.buf = s.buf[:copy(s.buf, s.buf[n:])]
			s.mu.Unlock()
			return n, nil
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		select {
		case <-s.wake:
		case <-t.C:
			return 0, nil
		}
	}
}

// purge drops what arrived since the last answer: noise, a DTU heartbeat or
// a late answer to an earlier request. It returns the connection's error
// when the peer has gone.
func (s *connStream) purge() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = s.buf[:0]
	return s.err
}

func (s *connStream) dead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}

func (s *connStream) write(b []byte, deadline time.Time) error {
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := s.conn.Write(b)
	return err
}

// Close closes the connection and waits for its reader.
func (s *connStream) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// streamTransport carries RTU frames over a TCP connection. With dial set
// it opens the connection itself (and reopens it after a failure); without,
// connections are handed to it by a DTUListener.
type streamTransport struct {
	desc string // "serial server 10.0.0.5:8899", "DTU on :9000 registering \"DTU01\""
	dial func(ctx context.Context) (net.Conn, error)
	gap  time.Duration

	timeout time.Duration // per request, set under the line lock
	last    time.Time     // end of the last frame
	late    lateGuard     // under the line lock

	mu     sync.Mutex
	stream *connStream
	since  time.Time // when stream was attached
}

var _ gmodbus.Transporter = (*streamTransport)(nil)

// ErrNotConnected is a request on a DTU line while no DTU is connected.
var ErrNotConnected = errors.New("DTU not connected")

// current returns the connection to use, dropping a dead one and dialling
// when the transport dials.
func (t *streamTransport) current(ctx context.Context) (*connStream, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stream != nil && t.stream.dead() {
		t.stream.Close()
		t.stream = nil
	}
	if t.stream != nil {
		return t.stream, nil
	}
	if t.dial == nil {
		return nil, fmt.Errorf("%s: %w", t.desc, ErrNotConnected)
	}
	c, err := t.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", t.desc, err)
	}
	t.stream, t.since = newConnStream(c), time.Now()
	return t.stream, nil
}

// attach makes c the connection of this transport; an earlier connection
// (the DTU before it reconnected) is closed.
func (t *streamTransport) attach(c net.Conn) {
	s := newConnStream(c)
	t.mu.Lock()
	old := t.stream
	t.stream, t.since = s, time.Now()
	t.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// drop closes s if it is still the transport's connection.
func (t *streamTransport) drop(s *connStream) {
	t.mu.Lock()
	if t.stream == s {
		t.stream = nil
	}
	t.mu.Unlock()
	s.Close()
}

// connected reports the peer address and since when, if connected.
func (t *streamTransport) connected() (net.Addr, time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stream == nil || t.stream.dead() {
		return nil, time.Time{}, false
	}
	return t.stream.conn.RemoteAddr(), t.since, true
}

// Close closes the connection; a dialling transport reopens it on the next
// request, a DTU line waits for the DTU to dial in again.
func (t *streamTransport) Close() error {
	t.mu.Lock()
	s := t.stream
	t.stream = nil
	t.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

// Send writes one request frame and reads one answer frame.
func (t *streamTransport) Send(ctx context.Context, adu []byte) ([]byte, error) {
	s, err := t.current(ctx)
	if err != nil {
		return nil, err
	}
	if wait := time.Until(t.last.Add(t.gap)); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() { t.last = time.Now() }()
	if err := t.late.settle(ctx, s, adu); err != nil {
		var pe *portError
		if errors.As(err, &pe) {
			t.drop(s)
			return nil, fmt.Errorf("%s: read: %w", t.desc, pe.err)
		}
		return nil, err
	}
	if err := s.purge(); err != nil {
		t.drop(s)
		return nil, fmt.Errorf("%s: connection lost: %w", t.desc, err)
	}
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.write(adu, deadline); err != nil {
		t.drop(s)
		return nil, fmt.Errorf("%s: write: %w", t.desc, err)
	}
	ans, err := readRTUAnswer(s, adu, deadline)
	t.late.after(adu, err, t.timeout)
	var pe *portError
	if errors.As(err, &pe) {
		t.drop(s)
		return nil, fmt.Errorf("%s: read: %w", t.desc, pe.err)
	}
	return ans, err
}

// newStreamLine makes a Line that frames RTU over t.
func newStreamLine(opts LineOpts, t *streamTransport) *Line {
	p := &gmodbus.RTUClientHandler{} // used for its RTU framing and CRC only
	return &Line{
		opts:   opts,
		client: gmodbus.NewClient2(p, t),
		slave:  p.SetSlave,
		tmo:    func(d time.Duration) { t.timeout = d },
		close:  t.Close,
	}
}

// NewRTUOverTCPLine prepares a line that speaks Modbus RTU framing over a
// TCP connection the collector opens to a serial server at opts.Address
// (bus type modbus-rtu-tcp). Nothing is opened until the first request; a
// lost connection is reopened on the next one. The serial settings of opts
// are unused (the serial server has its own); FrameGap adds to
// DefaultDTUGap.
func NewRTUOverTCPLine(opts LineOpts) (*Line, error) {
	if opts.Address == "" {
		return nil, fmt.Errorf("bus %q: modbus-rtu-tcp needs the serial server's host:port", opts.Name)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 3 * time.Second
	}
	addr := opts.Address
	d := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 15 * time.Second}
	t := &streamTransport{
		desc:    "serial server " + addr,
		dial:    func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		gap:     DefaultDTUGap + opts.FrameGap,
		timeout: time.Second,
	}
	// Line.String names the transport by Device: "modbus-rtu NAME (tcp://host:port)".
	opts.Device, opts.Address = "tcp://"+addr, ""
	return newStreamLine(opts, t), nil
}
