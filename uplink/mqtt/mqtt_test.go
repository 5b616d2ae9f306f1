package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func encoder() *jsonfmt.Encoder {
	return &jsonfmt.Encoder{Enterprise: "E1", Gateway: "G1", Location: time.FixedZone("UTC+08:00", 8*3600)}
}

func fill(t *testing.T, s buffer.Store, n int) {
	t.Helper()
	for i := range n {
		m := &edge.Message{Kind: edge.KindRT, Created: time.Now(), Readings: []edge.Reading{{Point: "P", TS: time.Now(), Value: edge.Num(float64(i)), Unit: "m"}}}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

type platform struct {
	mu   sync.Mutex
	c    paho.Client
	seen map[uint64]int
	res  map[uint64]bool // seqs that came again with resend: true
}

func newPlatform(t *testing.T, url string, tlsConf *tls.Config, onMsg func(p *platform, seq uint64, resend bool)) *platform {
	t.Helper()
	p := &platform{seen: map[uint64]int{}, res: map[uint64]bool{}}
	// A persistent session that reconnects by itself: the check cannot lose
	// messages to the test's own broker restarts.
	o := paho.NewClientOptions().AddBroker(url).SetClientID("platform-" + t.Name()).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond)
	if tlsConf != nil {
		o.SetTLSConfig(tlsConf)
	}
	p.c = paho.NewClient(o)
	if tok := p.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("platform connect: %v", tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(100) })
	p.c.Subscribe("safety/E1/G1/rt", 1, func(_ paho.Client, m paho.Message) {
		var b struct {
			Seq    uint64 `json:"seq"`
			Resend bool   `json:"resend"`
		}
		json.Unmarshal(m.Payload(), &b)
		p.mu.Lock()
		p.seen[b.Seq]++
		if b.Resend {
			p.res[b.Seq] = true
		}
		p.mu.Unlock()
		if onMsg != nil {
			onMsg(p, b.Seq, b.Resend)
		}
	}).Wait()
	return p
}

// runningUplink is the last uplink runUplink started.
var runningUplink *Uplink

func runUplink(t *testing.T, o Opts) (stop func()) {
	t.Helper()
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	runningUplink = u
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func waitUntil(t *testing.T, what string, within time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPlatformAck: in platform-ack mode the buffer is acknowledged only for
// the seqs the platform names on .../ack; the others are sent again (with
// resend: true) after the timeout until the platform takes them.
func TestPlatformAck(t *testing.T) {
	broker := testpeer.Mosquitto(t, false)
	store := buffer.NewMemory(buffer.Opts{Uplinks: []string{"mqtt"}}, 0)
	fill(t, store, 10)
	var ackMu sync.Mutex
	refusals := map[uint64]int{}
	plat := newPlatform(t, broker.URL(), nil, func(p *platform, seq uint64, resend bool) {
		// The platform stores odd seqs at once; even seqs only the third
		// time they come.
		ackMu.Lock()
		defer ackMu.Unlock()
		if seq%2 == 0 && refusals[seq] < 2 {
			refusals[seq]++
			return
		}
		b, _ := json.Marshal(jsonfmt.Ack{Seqs: []uint64{seq}})
		p.c.Publish("safety/E1/G1/ack", 1, false, b)
	})
	stop := runUplink(t, Opts{URL: broker.URL(), Store: store, Encoder: encoder(), PlatformAck: true, AckTimeout: time.Second})
	defer stop()
	waitUntil(t, "every seq acknowledged by the platform", 30*time.Second, func() bool { return store.Stats().Uplinks["mqtt"].Depth == 0 })
	plat.mu.Lock()
	defer plat.mu.Unlock()
	for s := uint64(1); s <= 10; s++ {
		want := 1
		if s%2 == 0 {
			want = 3
		}
		if plat.seen[s] < want {
			t.Errorf("seq %d arrived %d times, want at least %d (acknowledged on the %d.)", s, plat.seen[s], want, want)
		}
		if s%2 == 0 && !plat.res[s] {
			t.Errorf("seq %d was resent without resend: true", s)
		}
	}
}

// TestPubackOnly: without platform-ack, PUBACK acknowledges; and a publish
// while the broker is down acknowledges nothing.
func TestPubackOnly(t *testing.T) {
	broker := testpeer.Mosquitto(t, true)
	store := buffer.NewMemory(buffer.Opts{Uplinks: []string{"mqtt"}}, 0)
	fill(t, store, 5)
	plat := newPlatform(t, broker.URL(), nil, nil)
	stop := runUplink(t, Opts{URL: broker.URL(), Store: store, Encoder: encoder(), ReconnectMin: 100 * time.Millisecond, ReconnectMax: 300 * time.Millisecond})
	waitUntil(t, "PUBACKs", 10*time.Second, func() bool { return store.Stats().Uplinks["mqtt"].Depth == 0 })
	broker.Stop()
	waitUntil(t, "the uplink sees the broker gone", 10*time.Second, func() bool { return !runningUplink.Stats().Connected })
	fill(t, store, 5) // 6-10 appended while the broker is down
	time.Sleep(time.Second)
	if d := store.Stats().Uplinks["mqtt"].Depth; d != 5 {
		t.Fatalf("with the broker down %d messages are unacknowledged, want 5: nothing may be acknowledged without a PUBACK", d)
	}
	broker.Start()
	waitUntil(t, "backlog after the restart", 15*time.Second, func() bool { return store.Stats().Uplinks["mqtt"].Depth == 0 })
	stop()
	waitUntil(t, "the platform has 6-10", 10*time.Second, func() bool {
		plat.mu.Lock()
		defer plat.mu.Unlock()
		for s := uint64(6); s <= 10; s++ {
			if plat.seen[s] == 0 {
				return false
			}
		}
		return true
	})
	// 6-10 were never published before (no connection while they were
	// appended, and this process appended them): no resend mark.
	plat.mu.Lock()
	defer plat.mu.Unlock()
	for s := uint64(6); s <= 10; s++ {
		if plat.res[s] {
			t.Errorf("seq %d came with resend: true, but it could not have reached the platform before", s)
		}
	}
}

// pki makes a CA and two certificates signed by it.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	pool   *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// issue returns cert and key files for a server (with 127.0.0.1) or client.
func (p *pki) issue(t *testing.T, name string, server bool) (certFile, keyFile string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kd)
}

// TestMutualTLS: the uplink verifies the broker against the configured CA and
// presents its client certificate; a wrong CA or a missing client
// certificate gets no connection (and no acknowledgement).
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	srvCert, srvKey := p.issue(t, "broker", true)
	cliCert, cliKey := p.issue(t, "gateway", false)
	broker := testpeer.MosquittoTLS(t, testpeer.BrokerTLS{CAFile: p.caFile, CertFile: srvCert, KeyFile: srvKey, RequireCert: true})
	cert, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	good := &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	try := func(conf *tls.Config) uint64 {
		store := buffer.NewMemory(buffer.Opts{Uplinks: []string{"mqtt"}}, 0)
		fill(t, store, 3)
		stop := runUplink(t, Opts{URL: broker.URL(), Store: store, Encoder: encoder(), TLS: conf, ReconnectMin: 100 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
		deadline := time.Now().Add(5 * time.Second)
		for store.Stats().Uplinks["mqtt"].Depth != 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		return store.Stats().Uplinks["mqtt"].Depth
	}
	if d := try(good); d != 0 {
		t.Fatalf("mutual TLS: %d messages not acknowledged", d)
	}
	other := newPKI(t)
	if d := try(&tls.Config{RootCAs: other.pool, Certificates: []tls.Certificate{cert}}); d != 3 {
		t.Fatalf("a broker certificate from an unknown CA was accepted (%d unacknowledged)", d)
	}
	if d := try(&tls.Config{RootCAs: p.pool}); d != 3 {
		t.Fatalf("connected without a client certificate to a broker that requires one (%d unacknowledged)", d)
	}
	fmt.Fprint(os.Stderr, "")
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MQTT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runStarted runs u until the returned stop is called.
func runStarted(t *testing.T, u *Uplink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}
