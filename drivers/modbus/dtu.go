package modbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DTUListenerOpts configure a listener that DTUs dial in to.
type DTUListenerOpts struct {
	// Listen is the host:port to accept DTU connections on.
	Listen string
	// RegisterTimeout bounds the wait for a new connection's registration
	// packet (default 10s); a connection that sends none that a line
	// expects is closed.
	RegisterTimeout time.Duration
	// RetryListen is the wait before listening again when the address is
	// taken (a reload's old listener still holds it). Default 1s.
	RetryListen time.Duration
	// MaxPending bounds the connections waiting to register at once
	// (default 64); more are closed at once, so a flood of strangers
	// cannot pile up goroutines.
	MaxPending int
	Logger     *slog.Logger
}

// DefaultDTUListenerOpts returns the defaults for addr.
func DefaultDTUListenerOpts(addr string) DTUListenerOpts {
	return DTUListenerOpts{Listen: addr, RegisterTimeout: 10 * time.Second, RetryListen: time.Second, MaxPending: 64}
}

// DTUMatch identifies one DTU among those dialling a listener: by its
// registration packet (the first bytes it sends: Register as a prefix, or
// Pattern over them), by its source IP address, or by both.
type DTUMatch struct {
	Register []byte
	Pattern  *regexp.Regexp
	Source   string // IP address, e.g. 10.20.0.7
}

func (m DTUMatch) String() string {
	var s []string
	if m.Register != nil {
		s = append(s, fmt.Sprintf("registering % x", m.Register))
	}
	if m.Pattern != nil {
		s = append(s, fmt.Sprintf("registering /%s/", m.Pattern))
	}
	if m.Source != "" {
		s = append(s, "from "+m.Source)
	}
	return strings.Join(s, " ")
}

func (m DTUMatch) needsPacket() bool { return m.Register != nil || m.Pattern != nil }

// matchSource reports whether a connection from ip may be this DTU.
func (m DTUMatch) matchSource(ip net.IP) bool {
	if m.Source == "" {
		return true
	}
	want := net.ParseIP(m.Source)
	return want != nil && want.Equal(ip)
}

// matchPacket reports whether the first bytes b a connection sent are this
// DTU's registration (n bytes of it), or may still become it (more).
func (m DTUMatch) matchPacket(b []byte) (n int, ok, more bool) {
	switch {
	case m.Register != nil:
		if bytes.HasPrefix(b, m.Register) {
			return len(m.Register), true, false
		}
		return 0, false, bytes.HasPrefix(m.Register, b)
	case m.Pattern != nil:
		if loc := m.Pattern.FindIndex(b); loc != nil {
			return loc[1], true, false
		}
		return 0, false, true
	}
	return 0, true, false
}

// DTUListener accepts the connections of DTUs that dial in to the
// collector (bus type modbus-rtu-dtu) and hands each to the line it
// identifies. A DTU that reconnects replaces its earlier connection; while
// a line has no DTU connected its requests fail at once with
// ErrNotConnected (comm_fault), and the device's back-off probes pick the
// DTU up again once it is back.
type DTUListener struct {
	opts DTUListenerOpts
	log  *slog.Logger

	mu    sync.Mutex
	lines []*dtuLine
	addr  net.Addr
	up    chan struct{} // closed once listening
}

type dtuLine struct {
	name  string
	match DTUMatch
	t     *streamTransport
}

// NewDTUListener prepares a listener; Run listens.
func NewDTUListener(opts DTUListenerOpts) (*DTUListener, error) {
	d := DefaultDTUListenerOpts(opts.Listen)
	if opts.RegisterTimeout <= 0 {
		opts.RegisterTimeout = d.RegisterTimeout
	}
	if opts.RetryListen <= 0 {
		opts.RetryListen = d.RetryListen
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = d.MaxPending
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
		return nil, fmt.Errorf("DTU listener %q: %w", opts.Listen, err)
	}
	return &DTUListener{opts: opts, log: opts.Logger.With("dtu_listen", opts.Listen), up: make(chan struct{})}, nil
}

// Line adds a line served by the DTU that m identifies. Call it before Run.
// The serial settings of lo are unused; FrameGap adds to DefaultDTUGap.
func (l *DTUListener) Line(lo LineOpts, m DTUMatch) (*Line, error) {
	if !m.needsPacket() && m.Source == "" {
		return nil, fmt.Errorf("bus %q: a DTU line needs a registration packet or a source address", lo.Name)
	}
	if m.Source != "" && net.ParseIP(m.Source) == nil {
		return nil, fmt.Errorf("bus %q: source %q is not an IP address", lo.Name, m.Source)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.lines {
		if o.match.String() == m.String() {
			return nil, fmt.Errorf("bus %q: bus %q on the same listener already identifies its DTU %s", lo.Name, o.name, m)
		}
	}
	t := &streamTransport{desc: fmt.Sprintf("DTU on %s %s", l.opts.Listen, m), gap: DefaultDTUGap + lo.FrameGap, timeout: time.Second}
	l.lines = append(l.lines, &dtuLine{name: lo.Name, match: m, t: t})
	lo.Device, lo.Address = "dtu "+l.opts.Listen+" "+m.String(), ""
	return newStreamLine(lo, t), nil
}

// Addr waits until the listener listens (or ctx ends) and returns its
// address.
func (l *DTUListener) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case <-l.up:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.addr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// DTUState is what a line knows of its DTU.
type DTUState struct {
	Bus       string
	Connected bool
	Remote    string
	Since     time.Time
}

// States reports each line's DTU connection.
func (l *DTUListener) States() []DTUState {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []DTUState
	for _, dl := range l.lines {
		a, since, ok := dl.t.connected()
		st := DTUState{Bus: dl.name, Connected: ok, Since: since}
		if ok {
			st.Remote = a.String()
		}
		out = append(out, st)
	}
	return out
}

// Run accepts DTU connections until ctx ends, then closes them. An address
// that cannot be listened on yet (a reload's old listener still holds it)
// is retried; Run returns only when ctx ends.
func (l *DTUListener) Run(ctx context.Context) error {
	var lastErr string
	for {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", l.opts.Listen)
		if err == nil {
			l.serve(ctx, ln)
			return nil
		}
		if err.Error() != lastErr {
			l.log.Warn("cannot listen for DTUs yet; retrying", "err", err)
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(l.opts.RetryListen):
		}
	}
}

func (l *DTUListener) serve(ctx context.Context, ln net.Listener) {
	l.mu.Lock()
	l.addr = ln.Addr()
	l.mu.Unlock()
	close(l.up)
	l.log.Info("listening for DTUs", "addr", ln.Addr().String(), "lines", len(l.lines))
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	pending := make(chan struct{}, l.opts.MaxPending)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				l.log.Error("DTU listener stopped accepting", "err", err)
			}
			break
		}
		select {
		case pending <- struct{}{}:
		default:
			l.log.Warn("too many DTU connections waiting to register; closed", "remote", c.RemoteAddr().String(), "max_pending", l.opts.MaxPending)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-pending }()
			l.identify(ctx, c)
		}()
	}
	wg.Wait()
	for _, dl := range l.lines {
		dl.t.Close()
	}
}

// identify reads a new connection's registration packet (unless its source
// address alone identifies it) and attaches it to its line.
func (l *DTUListener) identify(ctx context.Context, c net.Conn) {
	remote := c.RemoteAddr().String()
	var ip net.IP
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.IP
	}
	var cands []*dtuLine
	for _, dl := range l.lines {
		if dl.match.matchSource(ip) {
			if !dl.match.needsPacket() {
				l.attach(dl, c, remote, nil)
				return
			}
			cands = append(cands, dl)
		}
	}
	if len(cands) == 0 {
		l.log.Warn("DTU connection from an address no line expects; closed", "remote", remote)
		c.Close()
		return
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	c.SetReadDeadline(time.Now().Add(l.opts.RegisterTimeout))
	buf := make([]byte, 0, 256)
	chunk := make([]byte, 256)
	for len(buf) < cap(buf) {
		n, err := c.Read(chunk[:min(len(chunk), cap(buf)-len(buf))])
		buf = append(buf, chunk[:n]...)
		more := false
		for _, dl := range cands {
			if _, ok, m := dl.match.matchPacket(buf); ok {
				c.SetReadDeadline(time.Time{})
				l.attach(dl, c, remote, buf)
				return
			} else if m {
				more = true
			}
		}
		if err != nil || !more {
			msg := "DTU sent no registration packet a line expects; closed"
			if err != nil && !errors.Is(err, context.Canceled) {
				msg += " (" + err.Error() + ")"
			}
			l.log.Warn(msg, "remote", remote, "received", fmt.Sprintf("% x", buf))
			c.Close()
			return
		}
	}
	l.log.Warn("DTU registration too long; closed", "remote", remote, "received", fmt.Sprintf("% x", buf))
	c.Close()
}

func (l *DTUListener) attach(dl *dtuLine, c net.Conn, remote string, reg []byte) {
	_, _, reconnect := dl.t.connected()
	l.log.Info("DTU connected", "bus", dl.name, "remote", remote, "registration", fmt.Sprintf("% x", reg), "replaces_earlier", reconnect)
	dl.t.attach(c)
}
