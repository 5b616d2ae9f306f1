// Package mqtt is the MQTT transport of the native JSON format: it publishes
// buffered messages at QoS 1 and acknowledges them in the buffer only after
// the broker's PUBACK (or, in platform-ack mode, the platform's answer on
// .../ack). What goes next, with which resend mark, and when a seq may be
// acknowledged is package uplink's delivery algorithm; this package holds
// the topics, the paho client and its tokens, and the platform's answers.
//
// paho v1 completes a publish token without error when a connection drops
// and is re-established, so this package never lets paho reconnect or resume:
// every connection is a fresh client with a clean session, and on every new
// connection everything the buffer still holds unacknowledged is sent again.
// A token counts only if it completed without error on the connection it was
// published on. This package must never acknowledge a message the broker
// (or, in platform-ack mode, the platform) did not confirm, and never reads
// more of a platform acknowledgement than MaxAckBytes.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
)

// Store is what the uplink needs of the buffer.
type Store = uplink.Store

// Stats count the uplink's work (Sent counts publishes).
type Stats = uplink.Stats

// Limits of a platform acknowledgement on .../ack (docs/uplink-format.md):
// a bigger payload, or one naming more seqs, is refused whole, logged
// truncated and counted in Stats.AcksRejected.
const (
	MaxAckBytes = 16 << 10
	MaxAckSeqs  = 4096
)

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
	d   *uplink.Delivery
}

// DefaultOpts are the documented defaults (config takes its numbers from
// here); set URL, Store and Encoder.
func DefaultOpts() Opts {
	d := uplink.DefaultOpts()
	return Opts{Name: "mqtt", TopicPrefix: "safety", KeepAlive: 30 * time.Second, Inflight: d.Window, Heartbeat: 30 * time.Second,
		AckTimeout: 30 * time.Second, DrainTimeout: 5 * time.Second, ReconnectMin: d.ReconnectMin, ReconnectMax: d.ReconnectMax}
}

// New checks the options and returns an uplink; Run starts it. Zero
// values take DefaultOpts'.
func New(o Opts) (*Uplink, error) {
	if o.URL == "" || o.Store == nil || o.Encoder == nil {
		return nil, errors.New("mqtt: URL, Store and Encoder are required")
	}
	d := DefaultOpts()
	if o.Name == "" {
		o.Name = d.Name
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = d.TopicPrefix
	}
	if o.ClientID == "" {
		o.ClientID = o.Encoder.Enterprise + "-" + o.Encoder.Gateway
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = d.KeepAlive
	}
	if o.Inflight <= 0 {
		o.Inflight = d.Inflight
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = d.Heartbeat
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = d.AckTimeout
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = d.DrainTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Status == nil {
		o.Status = func() jsonfmt.Heartbeat { return jsonfmt.Heartbeat{} }
	}
	u := &Uplink{o: o, log: o.Logger.With("component", "uplink", "uplink", o.Name, "url", o.URL)}
	do := uplink.DefaultOpts()
	do.Name, do.Store, do.Window, do.BacklogRate, do.Logger = o.Name, o.Store, o.Inflight, o.BacklogRate, u.log
	do.ReconnectMin, do.ReconnectMax = o.ReconnectMin, o.ReconnectMax
	if o.PlatformAck {
		do.Timeout = o.AckTimeout
	}
	dl, err := uplink.New(do)
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	u.d = dl
	return u, nil
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
func (u *Uplink) Stats() Stats { return u.d.Stats() }

// Run connects, publishes and reconnects until ctx ends. It never gives up.
func (u *Uplink) Run(ctx context.Context) error {
	return u.d.Run(ctx, u.connection)
}

type completion struct {
	seq uint64
	err error
}

// connection runs one connection from connect to loss.
func (u *Uplink) connection(ctx context.Context) error {
	lost := make(chan error, 1)
	acks := make(chan []uint64, 16)
	stop := make(chan struct{})
	defer close(stop)
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
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Disconnect(250)
	u.log.Info("connected to the MQTT broker")
	if u.o.PlatformAck {
		st := c.Subscribe(u.Topic("ack"), 1, func(_ paho.Client, msg paho.Message) {
			seqs, ok := u.parseAck(msg.Payload())
			if !ok {
				return
			}
			select {
			case acks <- seqs:
			case <-stop:
			}
		})
		if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
			return fmt.Errorf("subscribe %s: %v", u.Topic("ack"), st.Error())
		}
	}
	c.Publish(u.Topic("status"), 1, true, u.o.Encoder.Online(time.Now(), u.o.Status()))
	if u.o.Meta != nil {
		c.Publish(u.Topic("meta"), 1, true, u.o.Meta())
	}
	u.d.Begin()
	err := u.session(ctx, c, lost, acks)
	if ctx.Err() != nil {
		c.Publish(u.Topic("status"), 1, true, u.o.Encoder.Offline()).WaitTimeout(time.Second)
	}
	return err
}

// parseAck reads a platform acknowledgement: at most MaxAckBytes of JSON
// naming at most MaxAckSeqs seqs. Anything else is logged truncated, counted
// and refused whole.
func (u *Uplink) parseAck(b []byte) ([]uint64, bool) {
	reject := func(why string, err error) ([]uint64, bool) {
		// Logged, then counted: a refusal the stats show is complete.
		u.log.Warn("platform acknowledgement refused: "+why, "err", err, "bytes", len(b), "payload", clip(b))
		u.d.Update(func(s *Stats) { s.AcksRejected++ })
		return nil, false
	}
	if len(b) > MaxAckBytes {
		return reject(fmt.Sprintf("over %d bytes", MaxAckBytes), nil)
	}
	a, err := jsonfmt.ParseAck(b)
	if err != nil {
		return reject(`not {"seqs":[...]}`, err)
	}
	if len(a.Seqs) > MaxAckSeqs {
		return reject(fmt.Sprintf("names %d seqs, over %d", len(a.Seqs), MaxAckSeqs), nil)
	}
	return a.Seqs, true
}

// clip is at most 200 bytes of b, for a log line.
func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// session publishes until the connection is lost or ctx ends.
func (u *Uplink) session(ctx context.Context, c paho.Client, lost <-chan error, acks <-chan []uint64) error {
	done := make(chan completion, u.o.Inflight)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()

	hb := time.NewTicker(u.o.Heartbeat)
	defer hb.Stop()
	// paho keeps a payload until its PUBACK: each message in flight has its
	// own buffer, and a confirmed message's buffer is reused. (One that
	// failed is left to the collector: this client is done with anyway.)
	inflight := map[uint64][]byte{}
	var free [][]byte
	last := 0
	outcome := uplink.Await
	if u.o.PlatformAck {
		outcome = uplink.HandOver
	}
	send := func(m *edge.Message, resend bool) (uplink.Sent, error) {
		if _, busy := inflight[m.Seq]; busy {
			// Still with paho from an earlier publish: its PUBACK or
			// failure comes, and the platform's answer counts for it.
			return uplink.Sent{Outcome: outcome}, nil
		}
		var buf []byte
		if n := len(free); n > 0 {
			buf, free = free[n-1][:0], free[:n-1]
		} else {
			buf = make([]byte, 0, last+last/8+256)
		}
		buf = u.o.Encoder.Message(buf, m, resend, time.Now())
		last = len(buf)
		tok := c.Publish(u.topicOf(m.Kind), 1, false, buf)
		inflight[m.Seq] = buf
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
		return uplink.Sent{Outcome: outcome, Packets: 1}, nil
	}
	for {
		w, err := u.d.Step(send)
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			u.drain(done, inflight)
			return ctx.Err()
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case r := <-done:
			payload, ok := inflight[r.seq]
			if !ok {
				continue
			}
			delete(inflight, r.seq)
			if r.err != nil {
				// Not confirmed: it stays unacknowledged in the buffer and
				// goes out again, on a new connection.
				return fmt.Errorf("publish seq %d not confirmed: %w", r.seq, r.err)
			}
			if len(free) < keepPayloads && cap(payload) <= 4<<20 {
				free = append(free, payload)
			}
			if u.o.PlatformAck {
				u.d.Handed(r.seq)
			} else {
				u.d.Confirm(r.seq)
			}
		case seqs := <-acks:
			u.d.Confirm(seqs...)
		case <-hb.C:
			c.Publish(u.Topic("status"), 1, true, u.o.Encoder.Online(time.Now(), u.o.Status()))
		case <-w.Appended:
		case <-w.Rescan:
		case <-w.Timer:
		}
	}
}

// keepPayloads is how many confirmed payload buffers are kept for reuse:
// enough for the publishes of a commit window at the reference load, not
// one per message the window allows in flight (32 × 35 KB held for good).
const keepPayloads = 8

// drain waits (bounded) for PUBACKs of what is in flight at shutdown.
func (u *Uplink) drain(done <-chan completion, inflight map[uint64][]byte) {
	deadline := time.After(u.o.DrainTimeout)
	for len(inflight) > 0 {
		select {
		case r := <-done:
			delete(inflight, r.seq)
			if r.err == nil && !u.o.PlatformAck {
				u.d.Confirm(r.seq)
			}
		case <-deadline:
			u.log.Warn("shutting down with publishes unconfirmed; they will be sent again", "count", len(inflight))
			return
		}
	}
}
