package modbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// rtuPort is the byte stream under RTU framing: a serial port, or a TCP
// connection to a serial server (a DTU). go.bug.st/serial's Port has both
// methods; Read returns 0, nil when the read timeout passes.
type rtuPort interface {
	SetReadTimeout(time.Duration) error
	Read([]byte) (int, error)
}

// portError is a failure of the port itself (not of the answer): the
// caller closes the port so that the next request reopens it.
type portError struct{ err error }

func (e *portError) Error() string { return e.err.Error() }
func (e *portError) Unwrap() error { return e.err }

// readRTUAnswer reads the answer to the request adu from p until deadline.
// Noise before the answer is skipped: the answer starts with the unit id,
// the function code (or its exception) and, for reads, the byte count this
// request implies. It returns the answer frame (CRC not yet checked), a
// timeout naming what did arrive, or a *portError. Both the serial and the
// TCP (DTU) transports read with it, so that late and garbled bytes are
// handled the same on either.
func readRTUAnswer(p rtuPort, adu []byte, deadline time.Time) ([]byte, error) {
	buf := make([]byte, 0, 512)
	chunk := make([]byte, 256)
	for {
		buf = resync(adu, buf)
		want := answerLength(adu, buf)
		if len(buf) >= want {
			return buf[:want], nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			if len(buf) == 0 {
				return nil, ErrTimeout
			}
			return nil, fmt.Errorf("%w: %d of %d bytes (% x)", ErrTimeout, len(buf), want, buf)
		}
		if err := p.SetReadTimeout(left); err != nil {
			return nil, &portError{err}
		}
		n, err := p.Read(chunk)
		if err != nil {
			return nil, &portError{err}
		}
		buf = append(buf, chunk[:n]...)
		if len(buf) > 1024 {
			return nil, fmt.Errorf("garbled line: %d bytes without a valid answer", len(buf))
		}
	}
}

// lateGuard keeps a late answer from passing for the answer to another
// request. RTU frames carry no transaction id: a late answer of the same
// unit and length would be taken for the next request's answer (another
// block's values). It remembers a request whose answer may still arrive
// (owed), and before a different request to that unit reads the line until
// the owed answer has arrived (and is dropped) or its time is up. A retry
// of the same request needs no wait: the late answer answers it too. Other
// units' frames are told apart by the unit id.
type lateGuard struct {
	owed  []byte
	until time.Time
}

// after records how the request adu ended (err from readRTUAnswer).
func (g *lateGuard) after(adu []byte, err error, timeout time.Duration) {
	switch {
	case errors.Is(err, ErrTimeout):
		// The slave may still answer, after the next request went out.
		g.owe(adu, timeout)
	case err == nil && g.owed != nil && bytes.Equal(g.owed, adu):
		// A retry of a timed-out request: what was read may have been the
		// late answer to the first try, and this try's answer may follow.
		g.owe(adu, timeout)
	}
}

func (g *lateGuard) owe(adu []byte, timeout time.Duration) {
	g.owed = append(g.owed[:0], adu...)
	g.until = time.Now().Add(timeout)
}

// settle waits, reading p, for an answer owed by adu's unit before adu
// goes out. It returns a *portError when p fails, or ctx's error.
func (g *lateGuard) settle(ctx context.Context, p rtuPort, adu []byte) error {
	if g.owed == nil {
		return nil
	}
	if !time.Now().Before(g.until) {
		g.owed = nil
		return nil
	}
	if bytes.Equal(g.owed, adu) || g.owed[0] != adu[0] {
		return nil
	}
	deadline := g.until
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	owed := g.owed
	g.owed = nil
	if _, err := readRTUAnswer(p, owed, deadline); err != nil && !errors.Is(err, ErrTimeout) {
		var pe *portError
		if errors.As(err, &pe) {
			return err
		}
	}
	return ctx.Err()
}
