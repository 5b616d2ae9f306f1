package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.bug.st/serial"
)

// rtuTransport carries RTU frames over a serial port. grid-x/modbus frames
// and checks them (CRC, unit id); this transport exists because grid-x's own
// serial transporter cannot purge a line after a garbled frame (stale bytes
// would be read as the next answer) and has no configurable gap between
// frames. go.bug.st/serial gives the purge and per-read timeouts.
type rtuTransport struct {
	opts    LineOpts
	mode    *serial.Mode
	port    serial.Port
	timeout time.Duration // per request, set under the line lock
	gap     time.Duration // silence after each frame
	last    time.Time     // end of the last frame
	late    lateGuard     // a late answer is never taken for another request's
}

// ErrTimeout is a request that got no (complete) answer in time.
var ErrTimeout = errors.New("timeout: no complete answer")

func newRTUTransport(o LineOpts) (*rtuTransport, error) {
	if o.Baud == 0 {
		o.Baud = 9600
	}
	if o.DataBits == 0 {
		o.DataBits = 8
	}
	m := &serial.Mode{BaudRate: o.Baud, DataBits: o.DataBits, StopBits: serial.OneStopBit}
	switch o.Parity {
	case "", "none":
		m.Parity = serial.NoParity
	case "even":
		m.Parity = serial.EvenParity
	case "odd":
		m.Parity = serial.OddParity
	default:
		return nil, fmt.Errorf("parity %q", o.Parity)
	}
	if o.StopBits == 2 {
		m.StopBits = serial.TwoStopBits
	}
	// 3.5 character times; a character is 11 bits on the wire. Above 19200
	// baud the spec fixes it at 1.75 ms.
	gap := time.Duration(float64(time.Second) * 3.5 * 11 / float64(o.Baud))
	if o.Baud > 19200 {
		gap = 1750 * time.Microsecond
	}
	return &rtuTransport{opts: o, mode: m, timeout: time.Second, gap: gap + o.FrameGap}, nil
}

func (t *rtuTransport) open() error {
	if t.port != nil {
		return nil
	}
	p, err := serial.Open(t.opts.Device, t.mode)
	if err != nil {
		return fmt.Errorf("open serial port %s: %w", t.opts.Device, err)
	}
	t.port = p
	return nil
}

// Close closes the port; the next request reopens it.
func (t *rtuTransport) Close() error {
	if t.port == nil {
		return nil
	}
	err := t.port.Close()
	t.port = nil
	return err
}

// Send writes one request frame and reads one answer frame.
func (t *rtuTransport) Send(ctx context.Context, adu []byte) ([]byte, error) {
	if err := t.open(); err != nil {
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
	if err := t.late.settle(ctx, t.port, adu); err != nil {
		var pe *portError
		if errors.As(err, &pe) {
			t.Close()
			return nil, fmt.Errorf("read serial port: %w", pe.err)
		}
		return nil, err
	}
	// Whatever is waiting now is noise or a late answer to an earlier
	// request: drop it so it cannot pass for this request's answer.
	if err := t.port.ResetInputBuffer(); err != nil {
		t.Close()
		return nil, fmt.Errorf("purge serial input: %w", err)
	}
	if _, err := t.port.Write(adu); err != nil {
		t.Close()
		return nil, fmt.Errorf("write serial port: %w", err)
	}
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ans, err := readRTUAnswer(t.port, adu, deadline)
	t.late.after(adu, err, t.timeout)
	var pe *portError
	if errors.As(err, &pe) {
		t.Close()
		return nil, fmt.Errorf("read serial port: %w", pe.err)
	}
	return ans, err
}

// expectedLength is the length of a normal answer to the request adu (at
// most 256, the longest RTU frame).
func expectedLength(adu []byte) int {
	return min(256, answerLen(adu))
}

func answerLen(adu []byte) int {
	fn := adu[1]
	switch {
	case fn == 1 || fn == 2:
		return 5 + (int(binary.BigEndian.Uint16(adu[4:]))+7)/8
	case fn == 3 || fn == 4:
		return 5 + 2*int(binary.BigEndian.Uint16(adu[4:]))
	case fn == 5 || fn == 6 || fn == 15 || fn == 16:
		return 8
	}
	return 256
}

// answerLength is how long the answer starting buf is: an exception is 5
// bytes, anything else the request's expected length.
func answerLength(adu, buf []byte) int {
	if len(buf) >= 2 && buf[1] == adu[1]|0x80 {
		return 5
	}
	return expectedLength(adu)
}

// resync drops bytes before the first place an answer to adu can start.
func resync(adu, buf []byte) []byte {
	for i := 0; i < len(buf); i++ {
		if plausible(adu, buf[i:]) {
			return buf[i:]
		}
	}
	return buf[:0]
}

// plausible reports whether b can be the start of the answer to adu, as far
// as its first three bytes tell.
func plausible(adu, b []byte) bool {
	if b[0] != adu[0] {
		return false
	}
	if len(b) < 2 {
		return true
	}
	if b[1] == adu[1]|0x80 {
		return true
	}
	if b[1] != adu[1] {
		return false
	}
	if len(b) < 3 || adu[1] > 4 {
		return true
	}
	return int(b[2]) == expectedLength(adu)-5
}
