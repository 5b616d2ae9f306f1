// Package mqtt is the MQTT transport of the native JSON format: it publishes
// buffered messages at QoS 1 and acknowledges them in the buffer only after
// the broker's PUBACK (or, in platform-ack mode, the platform's answer on
// .../ack).
//
// paho v1 completes a publish token without error when a connection drops
// and is re-established, so this package never lets paho reconnect or resume:
// every connection is a fresh client with a clean session, and on every new
// connection everything the buffer still holds unacknowledged is sent again
// (resend: true). A token counts only if it completed without error on the
// connection it was published on. This package must never acknowledge a
// message the broker did not confirm.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink/backlograte"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
)

// Store is what the uplink needs of the buffer.
type Store interface {
	Unacked(uplink string, from, to uint64, max int) ([]*edge.Message, error)
	Ack(uplink string, seqs ...uint64) error
	LastSeq() uint64
	Appended() <-chan struct{}
}

// Opts configure the uplink. Zero values take the documented defaults.
type Opts struct {
	Name        string // the buffer's uplink name, default "mqtt"
	URL         string
	ClientID    string
	TopicPrefix string // default safety
	Username    string
	Password    string
	TLS         *tls.Config
	KeepAlive   time.Duration // default 30s
	Inflight    int           // publishes awaiting PUBACK, default 32
	// BacklogRate caps backlog messages per second (0: unlimited).
	BacklogRate float64
	Heartbeat   time.Duration // default 30s
	// ReconnectMin/Max bound the reconnect backoff (1s, 60s), with jitter.
	ReconnectMin, ReconnectMax time.Duration
	// PlatformAck: acknowledge only on the platform's {"seqs":[...]} on
	// .../ack; resend what is not acknowledged within AckTimeout (30s).
	PlatformAck bool
	AckTimeout  time.Duration
	// DrainTimeout bounds the wait for PUBACKs at shutdown (default 5s).
	DrainTimeout time.Duration

	Store   Store
	Encoder *jsonfmt.Encoder
	// Heartbeat fields and the point catalogue, provided by the collector.
	Status func() jsonfmt.Heartbeat
	Meta   func() []byte
	Logger *slog.Logger
}

// Uplink publishes the buffer to one broker.
type Uplink struct {
	o   Opts
	log *slog.Logger
	mu  sync.Mutex
	st  Stats
}

// Stats count the uplink's work.
type Stats struct {
	Connected bool
	Connects  uint64
	Published uint64
	Resent    uint64
	Acked     uint64
	LastError string
	Since     time.Time
}

// New checks the options and returns an uplink; Run starts it.
func New(o Opts) (*Uplink, error) {
	if o.URL == "" || o.Store == nil || o.Encoder == nil {
		return nil, errors.New("mqtt: URL, Store and Encoder are required")
	}
	if o.Name == "" {
		o.Name = "mqtt"
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = "safety"
	}
	if o.ClientID == "" {
		o.ClientID = o.Encoder.Enterprise + "-" + o.Encoder.Gateway
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.Inflight <= 0 {
		o.Inflight = 32
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 30 * time.Second
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = time.Second
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(60*time.Second, o.ReconnectMin)
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 30 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Status == nil {
		o.Status = func() jsonfmt.Heartbeat { return jsonfmt.Heartbeat{} }
	}
	return &Uplink{o: o, log: o.Logger.With("component", "uplink", "uplink", o.Name, "url", o.URL)}, nil
}

// Topic is {prefix}/{enterprise}/{gateway}/{leaf}.
func (u *Uplink) Topic(leaf string) string {
	return fmt.Sprintf("%s/%s/%s/%s", u.o.TopicPrefix, u.o.Encoder.Enterprise, u.o.Encoder.Gateway, leaf)
}

func (u *Uplink) topicOf(k edge.Kind) string {
	switch k {
	case edge.KindEvent:
		return u.Topic("event")
	case edge.KindStat:
		return u.Topic("stat")
	case edge.KindRTD:
		return u.Topic("rtd")
	}
	return u.Topic("rt")
}

// Stats returns a copy of the counters.
func (u *Uplink) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st
}

func (u *Uplink) update(f func(*Stats)) {
	u.mu.Lock()
	f(&u.st)
	u.mu.Unlock()
}

// Run connects, publishes and reconnects until ctx ends. It never gives up.
func (u *Uplink) Run(ctx context.Context) error {
	backoff := u.o.ReconnectMin
	for {
		up, err := u.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		u.update(func(s *Stats) { s.Connected = false; s.LastError = errString(err) })
		if up > time.Minute {
			backoff = u.o.ReconnectMin
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		u.log.Warn("MQTT connection ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, u.o.ReconnectMax)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type pending struct {
	m       *edge.Message
	resend  bool
	payload []byte
}

type completion struct {
	seq uint64
	err error
}

// connection runs one connection from connect to loss; it returns how long
// the connection was up.
func (u *Uplink) connection(ctx context.Context) (time.Duration, error) {
	lost := make(chan error, 1)
	acks := make(chan []uint64, 16)
	opts := paho.NewClientOptions().
		AddBroker(u.o.URL).
		SetClientID(u.o.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetKeepAlive(u.o.KeepAlive).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(10*time.Second).
		SetBinaryWill(u.Topic("status"), u.o.Encoder.Offline(), 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if u.o.Username != "" {
		opts.SetUsername(u.o.Username).SetPassword(u.o.Password)
	}
	if u.o.TLS != nil {
		opts.SetTLSConfig(u.o.TLS)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	start := time.Now()
	defer c.Disconnect(250)
	u.update(func(s *Stats) { s.Connected = true; s.Connects++; s.Since = start })
	u.log.Info("connected to the MQTT broker")
	if u.o.PlatformAck {
		st := c.Subscribe(u.Topic("ack"), 1, func(_ paho.Client, msg paho.Message) {
			a, err := jsonfmt.ParseAck(msg.Payload())
			if err != nil {
				u.log.Warn("platform acknowledgement is not {\"seqs\":[...]}", "err", err, "payload", string(msg.Payload()))
				return
			}
			acks <- a.Seqs
		})
		if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
			return time.Since(start), fmt.Errorf("subscribe %s: %v", u.Topic("ack"), st.Error())
		}
	}
	c.Publish(u.Topic("status"), 1, true, u.o.Encoder.Online(time.Now(), u.o.Status()))
	if u.o.Meta != nil {
		c.Publish(u.Topic("meta"), 1, true, u.o.Meta())
	}
	err := u.session(ctx, c, lost, acks)
	if ctx.Err() != nil {
		c.Publish(u.Topic("status"), 1, true, u.o.Encoder.Offline()).WaitTimeout(time.Second)
	}
	return time.Since(start), err
}

// session publishes until the connection is lost or ctx ends.
func (u *Uplink) session(ctx context.Context, c paho.Client, lost <-chan error, acks <-chan []uint64) error {
	done := make(chan completion, u.o.Inflight)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()

	liveFrom := u.o.Store.LastSeq() + 1 // everything below was there at connect: the backlog
	liveNext, backNext := liveFrom, uint64(1)
	inflight := map[uint64]pending{}
	awaiting := map[uint64]time.Time{} // platform-ack mode: published, waiting for the platform
	var resend []uint64                // platform-ack timeouts to publish again
	bucket := backlograte.New(u.o.BacklogRate)
	hb := time.NewTicker(u.o.Heartbeat)
	defer hb.Stop()
	ackCheck := time.NewTicker(max(time.Second, u.o.AckTimeout/4))
	defer ackCheck.Stop()
	// paho keeps a payload until its PUBACK: each message in flight has its
	// own buffer, and a confirmed message's buffer is reused. (One that
	// failed is left to the collector: this client is done with anyway.)
	var free [][]byte
	last := 0

	publish := func(m *edge.Message, isResend bool) {
		var buf []byte
		if n := len(free); n > 0 {
			buf, free = free[n-1][:0], free[:n-1]
		} else {
			buf = make([]byte, 0, last+last/8+256)
		}
		buf = u.o.Encoder.Message(buf, m, isResend, time.Now())
		last = len(buf)
		tok := c.Publish(u.topicOf(m.Kind), 1, false, buf)
		inflight[m.Seq] = pending{m, isResend, buf}
		u.update(func(s *Stats) {
			s.Published++
			if isResend {
				s.Resent++
			}
		})
		wg.Add(1)
		go func(seq uint64) {
			defer wg.Done()
			select {
			case <-tok.Done():
				select {
				case done <- completion{seq, tok.Error()}:
				case <-stop:
				}
			case <-stop:
			}
		}(m.Seq)
	}
	ackStore := func(seqs []uint64) {
		if len(seqs) == 0 {
			return
		}
		if err := u.o.Store.Ack(u.o.Name, seqs...); err != nil {
			u.log.Error("cannot record acknowledgements in the buffer", "err", err)
			return
		}
		u.update(func(s *Stats) { s.Acked += uint64(len(seqs)) })
	}
	fill := func() error {
		room := u.o.Inflight - len(inflight)
		if room <= 0 {
			return nil
		}
		// Live first: messages appended since the connection came up.
		ms, err := u.o.Store.Unacked(u.o.Name, liveNext, 0, room)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if _, busy := inflight[m.Seq]; !busy {
				publish(m, false)
			}
			liveNext = m.Seq + 1
		}
		// Then the backlog and platform-ack timeouts, oldest first, at the
		// configured rate.
		for len(inflight) < u.o.Inflight && len(resend) > 0 && bucket.Take() {
			seq := resend[0]
			resend = resend[1:]
			if _, busy := inflight[seq]; busy {
				continue
			}
			if ms, err := u.o.Store.Unacked(u.o.Name, seq, seq+1, 1); err == nil && len(ms) == 1 {
				publish(ms[0], true)
			}
		}
		for len(inflight) < u.o.Inflight && backNext < liveFrom {
			n := min(u.o.Inflight-len(inflight), bucket.Available())
			if n <= 0 {
				break
			}
			ms, err := u.o.Store.Unacked(u.o.Name, backNext, liveFrom, n)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				backNext = liveFrom
				break
			}
			for _, m := range ms {
				if _, busy := inflight[m.Seq]; !busy {
					if _, waiting := awaiting[m.Seq]; !waiting {
						bucket.Take()
						publish(m, true)
					}
				}
				backNext = m.Seq + 1
			}
		}
		return nil
	}

	for {
		if err := fill(); err != nil {
			return fmt.Errorf("read buffer: %w", err)
		}
		var refill <-chan time.Time
		if bucket.Limited() && (backNext < liveFrom || len(resend) > 0) && len(inflight) < u.o.Inflight {
			refill = time.After(bucket.Wait())
		}
		select {
		case <-ctx.Done():
			u.drain(done, inflight, awaiting, ackStore)
			return ctx.Err()
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case r := <-done:
			p, ok := inflight[r.seq]
			if !ok {
				continue
			}
			delete(inflight, r.seq)
			if r.err != nil {
				// Not confirmed: it stays unacknowledged in the buffer and
				// goes out again, on a new connection.
				return fmt.Errorf("publish seq %d not confirmed: %w", r.seq, r.err)
			}
			if len(free) < u.o.Inflight && cap(p.payload) <= 4<<20 {
				free = append(free, p.payload)
			}
			if u.o.PlatformAck {
				awaiting[p.m.Seq] = time.Now()
			} else {
				ackStore([]uint64{r.seq})
			}
		case seqs := <-acks:
			var mine []uint64
			for _, s := range seqs {
				if _, ok := awaiting[s]; ok {
					delete(awaiting, s)
				}
				mine = append(mine, s)
			}
			ackStore(mine)
		case <-ackCheck.C:
			now := time.Now()
			var late []uint64
			for s, at := range awaiting {
				if now.Sub(at) >= u.o.AckTimeout {
					late = append(late, s)
					delete(awaiting, s)
				}
			}
			if len(late) > 0 {
				sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
				u.log.Warn("platform did not acknowledge in time; resending", "count", len(late), "first", late[0])
				resend = mergeSorted(resend, late)
			}
		case <-hb.C:
			c.Publish(u.Topic("status"), 1, true, u.o.Encoder.Online(time.Now(), u.o.Status()))
		case <-u.o.Store.Appended():
		case <-refill:
		}
	}
}

// drain waits (bounded) for PUBACKs of what is in flight at shutdown.
func (u *Uplink) drain(done <-chan completion, inflight map[uint64]pending, awaiting map[uint64]time.Time, ack func([]uint64)) {
	deadline := time.After(u.o.DrainTimeout)
	for len(inflight) > 0 {
		select {
		case r := <-done:
			delete(inflight, r.seq)
			if r.err == nil && !u.o.PlatformAck {
				ack([]uint64{r.seq})
			}
		case <-deadline:
			u.log.Warn("shutting down with publishes unconfirmed; they will be sent again", "count", len(inflight))
			return
		}
	}
}

func mergeSorted(a, b []uint64) []uint64 {
	out := append(append([]uint64(nil), a...), b...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
