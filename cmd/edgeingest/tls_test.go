package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// testCA issues certificates for the broker and the worker.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := &testCA{dir: t.TempDir()}
	ca.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.file = ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(ca.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (ca *testCA) issue(t *testing.T, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return ca.write(t, name+".pem", "CERTIFICATE", der), ca.write(t, name+".key", "EC PRIVATE KEY", kd)
}

// TestMutualTLS: a worker verifies the broker against --ca and presents
// --cert/--key; without its certificate, or trusting another CA, it never
// subscribes.
func TestMutualTLS(t *testing.T) {
	testpeer.Need(t, "mosquitto")
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, "broker", true)
	cliCert, cliKey := ca.issue(t, "ingest", false)
	broker := testpeer.MosquittoTLS(t, testpeer.BrokerTLS{CAFile: ca.file, CertFile: srvCert, KeyFile: srvKey, RequireCert: true})
	pg := testpeer.PostgreSQL(t)
	url := broker.URL()

	good := testpeer.Start(t, ingestBin, "--mqtt", url, "--postgres", pg.DSN(), "--name", "tls-good", "--ca", ca.file, "--cert", cliCert, "--key", cliKey)
	good.WaitOutput(t, "msg=subscribed", 60*time.Second)

	other := newTestCA(t)
	for name, args := range map[string][]string{
		"no client certificate": {"--ca", ca.file},
		"another CA":            {"--ca", other.file, "--cert", cliCert, "--key", cliKey},
	} {
		p := testpeer.Start(t, ingestBin, append([]string{"--mqtt", url, "--postgres", pg.DSN(), "--name", "tls-bad"}, args...)...)
		p.WaitOutput(t, "MQTT connection ended; reconnecting", 60*time.Second)
		p.Kill()
		if strings.Contains(p.Output(), "msg=subscribed") {
			t.Errorf("%s: the worker subscribed:\n%s", name, p.Output())
		}
	}
}
