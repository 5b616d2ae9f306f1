package mqtt

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
	"github.com/hazwatch/edgecollector/uplink"
	"github.com/hazwatch/edgecollector/uplink/uplinktest"
)

// mqttPlatform is a platform behind a real Mosquitto: it subscribes to
// .../rt, reads each body with encoding/json (not this package's encoder),
// and confirms on .../ack. The uplink reaches the broker through a proxy
// that the suite can cut.
type mqttPlatform struct {
	t      *testing.T
	broker *testpeer.Broker
	proxy  *uplinktest.Proxy
	c      paho.Client

	mu        sync.Mutex
	receipts  []uplinktest.Receipt
	confirm   func(uint64) bool
	confirmed map[uint64]bool
}

func newMQTTPlatform(t *testing.T) uplinktest.Platform {
	broker := testpeer.Mosquitto(t, false)
	p := &mqttPlatform{t: t, broker: broker, proxy: uplinktest.NewProxy(t, broker.Addr()),
		confirm: func(uint64) bool { return true }, confirmed: map[uint64]bool{}}
	o := paho.NewClientOptions().AddBroker(broker.URL()).SetClientID("platform").SetCleanSession(true)
	p.c = paho.NewClient(o)
	if tok := p.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("platform connect: %v", tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(100) })
	tok := p.c.Subscribe("safety/E1/G1/rt", 1, func(_ paho.Client, m paho.Message) {
		var b struct {
			Seq    *uint64 `json:"seq"`
			Resend *bool   `json:"resend"`
		}
		if err := json.Unmarshal(m.Payload(), &b); err != nil || b.Seq == nil || b.Resend == nil {
			t.Errorf("platform: a data message without seq or resend: %s", m.Payload())
			return
		}
		p.mu.Lock()
		p.receipts = append(p.receipts, uplinktest.Receipt{Seq: *b.Seq, Resend: *b.Resend, Conn: p.proxy.Conns(), At: time.Now()})
		ok := p.confirm != nil && p.confirm(*b.Seq)
		if ok {
			p.confirmed[*b.Seq] = true
		}
		p.mu.Unlock()
		if ok {
			p.publishAck(*b.Seq)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("platform subscribe: %v", tok.Error())
	}
	return p
}

// publishAck writes {"seqs":[...]} by hand.
func (p *mqttPlatform) publishAck(seqs ...uint64) {
	b := []byte(`{"seqs":[`)
	for i, s := range seqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, s, 10)
	}
	b = append(b, "]}"...)
	p.c.Publish("safety/E1/G1/ack", 1, false, b)
}

func (p *mqttPlatform) Receipts() []uplinktest.Receipt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uplinktest.Receipt(nil), p.receipts...)
}

func (p *mqttPlatform) SetConfirm(f func(uint64) bool) {
	p.mu.Lock()
	p.confirm = f
	p.mu.Unlock()
}

func (p *mqttPlatform) Confirmed(seq uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.confirmed[seq]
}

func (p *mqttPlatform) Ack(ms ...*edge.Message) {
	seqs := make([]uint64, len(ms))
	p.mu.Lock()
	for i, m := range ms {
		seqs[i] = m.Seq
		p.confirmed[m.Seq] = true
	}
	p.mu.Unlock()
	p.publishAck(seqs...)
}

func (p *mqttPlatform) Drop()          { p.proxy.Drop() }
func (p *mqttPlatform) Refuse(on bool) { p.proxy.Refuse(on) }

// TestContract runs the uplink contract against Mosquitto in platform-ack
// mode (the mode in which the platform, not the broker, confirms).
func TestContract(t *testing.T) {
	uplinktest.RunContract(t, uplinktest.Transport{
		Name:     "mqtt",
		Platform: newMQTTPlatform,
		Start: func(t *testing.T, pl uplinktest.Platform, store uplink.Store, o uplinktest.Opts) (func(), func() uplink.Stats) {
			p := pl.(*mqttPlatform)
			u, err := New(Opts{URL: "tcp://" + p.proxy.Addr(), Store: store, Encoder: encoder(), PlatformAck: true, AckTimeout: o.Timeout,
				BacklogRate: o.BacklogRate, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { u.Run(ctx); close(done) }()
			return func() { cancel(); <-done }, u.Stats
		},
		Message: func(i int) *edge.Message {
			now := time.Now()
			return &edge.Message{Kind: edge.KindRT, Created: now, Readings: []edge.Reading{{Point: "P", TS: now, Value: edge.Num(float64(i)), Unit: "m"}}}
		},
	})
}
