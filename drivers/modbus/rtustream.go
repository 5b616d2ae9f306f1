package modbus

import (
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
