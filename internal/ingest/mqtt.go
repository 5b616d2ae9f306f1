package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxAckSeqs caps the seqs in one ack message (a gateway caps the payloads
// it accepts); more go in several messages.
const maxAckSeqs = 1000

// maxUnsent caps the acknowledgements kept while the broker is away; beyond
// it they are forgotten and the gateways simply send those seqs again.
const maxUnsent = 1 << 20

// Filters are the shared-subscription filters a worker subscribes to.
func Filters(group, prefix string) []string {
	var out []string
	for _, leaf := range append(append([]string{}, dataLeaves...), stateLeaves...) {
		out = append(out, "$share/"+group+"/"+prefix+"/+/+/"+leaf)
	}
	return out
}

// subscribe keeps a broker connection until ctx ends. paho's own reconnect
// is off (it completes tokens of a dropped connection without error): each
// connection is new, with a clean session, and re-subscribes.
func (w *Worker) subscribe(ctx, work context.Context, in chan<- inbound) {
	backoff := w.o.ReconnectMin
	for {
		up, err := w.connection(ctx, work, in)
		if ctx.Err() != nil {
			return
		}
		if up > time.Minute {
			backoff = w.o.ReconnectMin
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		w.log.Warn("MQTT connection ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, w.o.ReconnectMax)
	}
}

type pahoPub struct{ c paho.Client }

func (p pahoPub) Publish(topic string, payload []byte) { p.c.Publish(topic, 1, false, payload) }

// connection runs one broker connection. When ctx ends it unsubscribes and
// keeps the connection while the pipeline (which runs until work ends)
// stores and acknowledges what was received.
func (w *Worker) connection(ctx, work context.Context, in chan<- inbound) (time.Duration, error) {
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker(w.o.MQTT).
		SetClientID(w.o.Name).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		// Handlers run one at a time and block when the queue is full:
		// the broker's TCP window is the back-pressure.
		SetOrderMatters(true).
		SetKeepAlive(30 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if w.o.Username != "" {
		opts.SetUsername(w.o.Username).SetPassword(w.o.Password)
	}
	if w.o.TLS != nil {
		opts.SetTLSConfig(w.o.TLS)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return 0, fmt.Errorf("connect %s: %w", w.o.MQTT, err)
	}
	start := time.Now()
	defer c.Disconnect(250)
	defer w.setPublisher(nil)
	w.connects.Add(1)

	filters := map[string]byte{}
	for _, f := range Filters(w.o.Group, w.o.Prefix) {
		filters[f] = 1
	}
	st := c.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		w.received.Add(1)
		w.pending.Add(1)
		select {
		case in <- inbound{m.Topic(), m.Payload(), time.Now()}:
		case <-work.Done():
			w.pending.Add(-1)
		}
	})
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return time.Since(start), fmt.Errorf("subscribe: %v", st.Error())
	}
	if sub, ok := st.(*paho.SubscribeToken); ok {
		for f, q := range sub.Result() {
			if q == 0x80 {
				return time.Since(start), fmt.Errorf("the broker refused the subscription %s (does it support $share?)", f)
			}
		}
	}
	w.log.Info("subscribed", "broker", w.o.MQTT, "filters", len(filters), "group", w.o.Group, "prefix", w.o.Prefix)
	w.setPublisher(pahoPub{c})
	select {
	case <-ctx.Done():
		names := make([]string, 0, len(filters))
		for f := range filters {
			names = append(names, f)
		}
		if tok := c.Unsubscribe(names...); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
			w.log.Warn("no UNSUBACK; storing what was received anyway", "err", tok.Error())
		}
		w.waitIdle(drainTimeout)
		return time.Since(start), nil
	case err := <-lost:
		return time.Since(start), fmt.Errorf("connection lost: %w", err)
	}
}

// setPublisher installs the connection acks go out on, and sends the acks
// that waited for one.
func (w *Worker) setPublisher(p publisher) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pub = p
	if p == nil || len(w.unsent) == 0 {
		return
	}
	pending := w.unsent
	w.unsent = map[gwKey]map[int64]bool{}
	for k, set := range pending {
		seqs := make([]int64, 0, len(set))
		for s := range set {
			seqs = append(seqs, s)
		}
		w.publishLocked(k, seqs)
	}
}

// ack acknowledges committed seqs on each gateway's .../ack, or keeps them
// for the next connection.
func (w *Worker) ack(acks map[gwKey][]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, seqs := range acks {
		if w.pub != nil {
			w.publishLocked(k, seqs)
			continue
		}
		set := w.unsent[k]
		if set == nil {
			set = map[int64]bool{}
			w.unsent[k] = set
		}
		for _, s := range seqs {
			if len(set) < maxUnsent {
				set[s] = true
			}
		}
	}
}

func (w *Worker) publishLocked(k gwKey, seqs []int64) {
	slices.Sort(seqs)
	topic := w.o.Prefix + "/" + k.Enterprise + "/" + k.Gateway + "/ack"
	for len(seqs) > 0 {
		n := min(len(seqs), maxAckSeqs)
		w.pub.Publish(topic, AckPayload(seqs[:n]))
		w.acked.Add(uint64(n))
		seqs = seqs[n:]
	}
}

// AckPayload is {"seqs":[...]}.
func AckPayload(seqs []int64) []byte {
	b := make([]byte, 0, 10+len(seqs)*8)
	b = append(b, `{"seqs":[`...)
	for i, s := range seqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, s, 10)
	}
	return append(b, "]}"...)
}
