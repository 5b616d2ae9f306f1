package collector

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener caps the connections open at once: one accepted beyond
// the cap is closed at once (a local user holding many connections cannot
// take the file descriptors the poll path and the buffer need). Accept
// errors are never fatal while the listener is open: a temporary one (no
// file descriptors left, a connection reset before it was accepted) is
// retried after a back-off, as net/http does.
type limitListener struct {
	net.Listener
	name string
	max  int
	log  *slog.Logger

	active                       atomic.Int64
	accepted, rejected, failures atomic.Uint64
	closed                       atomic.Bool
}

func newLimitListener(l net.Listener, name string, max int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: l, name: name, max: max, log: log}
}

// acceptBackoff bounds the wait after a failed Accept.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Accept returns the next connection within the cap. It fails only once
// the listener is closed (net.ErrClosed).
func (l *limitListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return nil, net.ErrClosed
			}
			l.failures.Add(1)
			wait = min(max(2*wait, acceptBackoffMin), acceptBackoffMax)
			if wait == acceptBackoffMax || l.failures.Load()%100 == 1 {
				l.log.Warn("accept failed; retrying", "listener", l.name, "err", err, "in", wait)
			}
			time.Sleep(wait)
			continue
		}
		wait = 0
		if int(l.active.Load()) >= l.max {
			l.rejected.Add(1)
			conn.Close()
			continue
		}
		l.active.Add(1)
		l.accepted.Add(1)
		return &limitConn{Conn: conn, l: l}, nil
	}
}

func (l *limitListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

func (l *limitListener) status() ListenerStatus {
	return ListenerStatus{Listener: l.name, Addr: l.Addr().String(), Active: int(l.active.Load()), Max: l.max,
		Accepted: l.accepted.Load(), Rejected: l.rejected.Load(), AcceptErrors: l.failures.Load()}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

// Unwrap returns the accepted connection (peer credentials).
func (c *limitConn) Unwrap() net.Conn { return c.Conn }

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.active.Add(-1) })
	return err
}

// ServeConns accepts connections on l until ctx ends, at most max at once,
// and runs handle for each in its own goroutine with a deadline of timeout
// (a panic in handle closes that connection only). It returns nil when ctx
// ends; l is closed then. The listener is reported in Status.
func (c *Collector) ServeConns(ctx context.Context, l net.Listener, name string, max int, timeout time.Duration, handle func(context.Context, net.Conn)) error {
	ll := newLimitListener(l, name, max, c.log)
	c.mu.Lock()
	c.listeners = append(c.listeners, ll)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		for i, x := range c.listeners {
			if x == ll {
				c.listeners = append(c.listeners[:i], c.listeners[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}()
	// When ctx ends, open connections get a second to finish: an answer
	// being written (to a reload that ended this collector) still goes
	// out, an idle client is cut off.
	var open sync.Map // net.Conn → struct{}
	stop := context.AfterFunc(ctx, func() {
		ll.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).SetDeadline(time.Now().Add(time.Second)); return true })
	})
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ll.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		conn.SetDeadline(time.Now().Add(timeout))
		open.Store(conn, struct{}{})
		if ctx.Err() != nil {
			conn.SetDeadline(time.Now().Add(time.Second))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer open.Delete(conn)
			defer conn.Close()
			defer func() {
				if r := recover(); r != nil {
					c.log.Error("control connection handler panicked", "listener", name, "panic", r)
				}
			}()
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			handle(hctx, conn)
		}()
	}
}
