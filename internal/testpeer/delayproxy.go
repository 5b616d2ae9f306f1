package testpeer

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// DelayProxy sits between a Modbus TCP master and slave and holds answers
// back: the n-th answer waits the n-th delay given to Delay (none once they
// run out). Answers keep their order, as a slow slave or a congested link
// (a cellular DTU) gives them.
type DelayProxy struct {
	l      net.Listener
	target string
	delays Delays
	wg     sync.WaitGroup
}

// StartDelayProxy proxies to target (host:port) on a free loopback port.
func StartDelayProxy(t testing.TB, target string) *DelayProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &DelayProxy{l: l, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

// Addr is where the master connects.
func (p *DelayProxy) Addr() string { return p.l.Addr().String() }

// Delay holds the next answers back, one delay each.
func (p *DelayProxy) Delay(d ...time.Duration) { p.delays.Add(d...) }

func (p *DelayProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() {
			defer p.wg.Done()
			defer c.Close()
			hdr := make([]byte, 6)
			for {
				if _, err := io.ReadFull(s, hdr); err != nil {
					return
				}
				body := make([]byte, binary.BigEndian.Uint16(hdr[4:]))
				if _, err := io.ReadFull(s, body); err != nil {
					return
				}
				time.Sleep(p.delays.Next())
				if _, err := c.Write(append(append([]byte(nil), hdr...), body...)); err != nil {
					return
				}
			}
		}()
	}
}
